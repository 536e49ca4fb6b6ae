"""The recorder guard: appends every relayed message to a JSON Lines session file before it is forwarded.

Files are 0600 in 0700 directories. A record that cannot be written stops the message (fail closed).
The signed-transcripts work turns these files into signed, hash-chained transcripts.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import platform
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relay import __version__
from relay.errors import GuardError
from relay.jsonrpc import Message, dumps
from relay.paths import private_dir
from relay.pipeline import Context

MESSAGE_KEY = b',"message":'


def message_bytes(line: bytes) -> bytes:
    """The exact bytes of the message a transcript line records.

    A message is recorded as the JSON it is, as the last member `"message"`: its bytes run from that key to
    the line's closing brace (the first `,"message":` of the line is the key, since the string values before
    it have their quotes escaped). A message with line breaks is recorded as the string `"message_text"`.
    """
    line = line.rstrip(b"\n")
    at = line.find(MESSAGE_KEY)
    if at >= 0:
        return line[at + len(MESSAGE_KEY):-1]
    text = json.loads(line).get("message_text")
    if not isinstance(text, str):
        raise ValueError("this transcript line records no message")
    return text.encode("utf-8")


def new_session_id() -> str:
    """Sortable by start time, unique without coordination."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Recorder:
    """Write-ahead recording of every message, in both directions."""

    name = "recorder"

    def __init__(self, directory: Path, session_id: str, server: str) -> None:
        self.path = directory / f"{session_id}.jsonl"
        self.session_id = session_id
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            private_dir(directory)
            self._fd: int | None = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise GuardError(f"cannot create transcript {self.path}: {exc.strerror or exc}") from None
        self._seq = 0
        self._write({
            "type": "session", "session": session_id, "relay": __version__, "server": server,
            "host": platform.node(), "user": _user(), "pid": os.getpid(),
        })

    def _write(self, record: dict[str, Any], message: bytes | None = None) -> None:
        fd = self._fd
        if fd is None:
            raise GuardError("transcript is closed")
        seq = self._seq + 1
        head = dumps({"seq": seq, "ts": _now(), **record}).encode("utf-8")
        if message is None:
            line = head + b"\n"
        elif b"\n" in message or b"\r" in message:
            # Pretty-printed JSON (from some HTTP servers) cannot sit inside one line as it is: as a string.
            line = head[:-1] + b',"message_text":' + dumps(message.decode("utf-8")).encode("utf-8") + b"}\n"
        else:
            # The message goes in as the JSON it is, byte for byte: no second encoding on the hot path.
            line = head[:-1] + MESSAGE_KEY + message + b"}\n"
        written = 0
        try:
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                written += n
                view = view[n:]
        except OSError as exc:
            if written:
                # Never leave a torn line for the next record to be glued onto.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
            raise GuardError(f"cannot write transcript {self.path}: {exc.strerror or exc}") from None
        self._seq = seq  # only a record that reached the file takes a number

    async def intercept(self, msg: Message, ctx: Context) -> Message:
        obj = msg.obj
        record: dict[str, Any] = {"type": "message", "dir": msg.direction.short, "kind": msg.kind.value}
        if isinstance(obj, dict):
            if "id" in obj:
                record["id"] = obj["id"]
            method = obj.get("method") or ctx.method
            if method:
                record["method"] = method
            tool = ctx.tool if ctx.request is not None else (msg.params.get("name") if method == "tools/call" else None)
            if isinstance(tool, str):
                record["tool"] = tool
        if ctx.notes:
            record["notes"] = ctx.notes
        self._write(record, (ctx.record or msg).raw)
        return msg

    def on_event(self, event: dict[str, Any]) -> None:
        """Relay's own decisions (errors it answered with, faults it saw) belong in the transcript too."""
        self._write({"type": "event", **event})

    async def aclose(self) -> None:
        if self._fd is None:
            return
        try:
            self._write({"type": "end"})
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
