"""The tty approval channel: a prompt on relay's controlling terminal.

Only where that terminal is not the protocol's: with `--listen`, or when `relay run` sits in a pipeline started by
hand (stdin and stdout are pipes, the terminal is free). When the MCP client talks over relay's stdin/stdout and
those are the terminal, or relay has no terminal (spawned by an assistant), the channel is unavailable. One
question at a time: calls that wait together are asked in turn. The approver is the OS user at the terminal, as
with the local channel.

An assistant that itself runs in the terminal (a CLI agent) shares it with relay: name `local` there, not `tty`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import time

import anyio

from relay.approval.broker import Broker, DecisionRefused
from relay.approval.channels import ChannelUnavailable, ClientLink
from relay.approval.request import ApprovalRequest
from relay.console import shown

TERMINAL = "/dev/tty"
MAX_ARGUMENTS = 1500
MAX_LINE = 4096

YES = ("y", "yes", "a", "approve")
NO = ("n", "no", "d", "deny")


def parse(line: str) -> tuple[bool, str | None] | None:
    """'y', 'n', or either followed by a reason ('n over the limit'); None for anything else."""
    word, _, rest = line.strip().partition(" ")
    word = word.lower()
    if word not in YES and word not in NO:
        return None
    reason = "".join(c if c.isprintable() else " " for c in rest.strip())[:500] or None
    return word in YES, reason


def describe(request: ApprovalRequest) -> str:
    arguments = json.dumps(request.arguments, ensure_ascii=False)
    if len(arguments) > MAX_ARGUMENTS:
        arguments = arguments[:MAX_ARGUMENTS] + " ..."
    who = request.requester
    name = who.get("email") or who.get("name") or who.get("subject") or who.get("user") or "?"
    left = max(0, round(request.expires_at - time.time()))
    why = f": {request.reason}" if request.reason else ""
    # The tool name and arguments come from the agent: escaped, so that they cannot rewrite the terminal.
    return "\n" + shown(f"relay: approval {request.id}: {request.server} / {request.tool} for {name} "
                 f"({request.rule}{why}), {left}s left") + f"\n  arguments: {shown(arguments)}\n"


class TtyChannel:
    name = "tty"

    def __init__(self, *, protocol_on_terminal: bool, path: str = TERMINAL) -> None:
        """`protocol_on_terminal`: the MCP client speaks over relay's stdin/stdout and they are a terminal."""
        self._protocol_on_terminal = protocol_on_terminal
        self._path = path
        self._turn = anyio.Lock()

    async def offer(self, request: ApprovalRequest, broker: Broker, client: ClientLink) -> None:
        if self._protocol_on_terminal:
            raise ChannelUnavailable("relay's terminal carries the MCP protocol; there is no terminal to ask on")
        async with self._turn:
            if not broker.is_pending(request.id):
                return
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError:
                raise ChannelUnavailable("relay has no terminal to ask on") from None
            try:
                await self._ask(fd, request, broker)
            finally:
                os.close(fd)

    async def aclose(self) -> None:
        return None

    async def _ask(self, fd: int, request: ApprovalRequest, broker: Broker) -> None:
        prompt = "Approve? y or n, then an optional reason (e.g. 'n needs a ticket'): "
        _write(fd, describe(request) + prompt)
        try:
            while True:
                line = await _read_line(fd)
                if line is None:
                    raise ChannelUnavailable("relay's terminal closed")
                answer = parse(line)
                if answer is None:
                    _write(fd, prompt)
                    continue
                approve, reason = answer
                try:
                    verdict = broker.decide(request.id, request.digest, approve=approve, approver=_user(),
                                            reason=reason, channel=self.name, nonce=request.nonce,
                                            identity={"user": _user()}, self_approval=True)
                except DecisionRefused as exc:
                    _write(fd, f"relay: not counted: {exc}\n")
                    return
                done = "approved" if approve else "denied"
                more = "" if verdict is not None else "; more approvers are needed"
                _write(fd, f"relay: {done} {request.id}{more}\n")
                return
        except anyio.get_cancelled_exc_class():
            with contextlib.suppress(OSError):
                _write(fd, f"\nrelay: approval {request.id} was settled elsewhere or ran out of time\n")
            raise


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _write(fd: int, text: str) -> None:
    data = text.encode("utf-8", "replace")
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            time.sleep(0.01)  # a terminal that is this slow to take a few hundred bytes is rare


async def _read_line(fd: int) -> str | None:
    """One line from the terminal (in its usual line mode); None at end of file."""
    data = b""
    while True:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, 1024)
        except BlockingIOError:
            continue
        except OSError:
            return None  # the terminal hung up
        if not chunk:
            return None
        data += chunk
        if b"\n" in data or len(data) > MAX_LINE:
            return data.split(b"\n", 1)[0].decode("utf-8", "replace")
