"""The recorder guard: every relayed message becomes a signed transcript record before it is forwarded.

A record that cannot be written stops the message (fail closed), unless the operator chose
`transcripts.unsafe_continue_on_error`; then the gap is logged and counted in the transcript once writing works
again. Relay's own decisions (errors it answered with, faults it saw) are recorded too.
"""

from __future__ import annotations

import logging
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.errors import GuardError
from relay.jsonrpc import Direction, Kind, Message
from relay.pipeline import Context
from relay.transcript.format import dumps
from relay.transcript.writer import SessionWriter

if TYPE_CHECKING:
    from relay.transcript.ship import Shipper

log = logging.getLogger("relay.transcript")

# A message record's members are written as JSON text directly, in the order docs/transcript-format.md lists
# them: the same bytes json would make of the dict, without building and encoding one per message. Keyed by the
# enums' values: hashing an Enum member runs Python code.
_DIR_KIND = {d.value: {k.value: f'"dir":"{d.short}","kind":"{k.value}"' for k in Kind} for d in Direction}
_SUCCESS = ',"outcome":"success"'
_FAILURE = ',"outcome":"failure"'


def _json(value: Any) -> str:
    t = type(value)
    if t is str:
        return encode_basestring(value)  # what dumps does with a str
    if t is int:
        return str(value)
    return dumps(value)


class Recorder:
    name = "recorder"

    # After the seal, how long the last records may take to reach the collector before relay exits anyway
    # (what is left is shipped at the next start or by `relay transcripts ship`).
    DRAIN_SECONDS = 5.0
    BACKLOG_SECONDS = 600.0

    def __init__(self, writer: SessionWriter, host_key: Ed25519PrivateKey, *, unsafe_continue: bool = False,
                 shipper: Shipper | None = None, required_lag: float | None = None) -> None:
        self.writer = writer
        self._host_key = host_key
        self._unsafe_continue = unsafe_continue
        self._unrecorded = 0
        self.shipper = shipper
        self._required_lag = required_lag  # collector.required: refuse to relay past this ack lag
        if shipper is not None:
            shipper.on_ack = self._ack

    async def intercept(self, msg: Message, ctx: Context) -> Message:
        if self._required_lag is not None and self.shipper is not None:
            lag = self.shipper.lag()
            if lag > self._required_lag:
                raise GuardError(f"the collector has not acknowledged transcript records for {lag:.0f}s "
                                 f"(collector.required, max_lag {self._required_lag:g}s); message withheld")
        obj = msg.obj
        members = _DIR_KIND[msg.direction._value_][msg.kind._value_]
        if isinstance(obj, dict):
            if "id" in obj:
                members += ',"id":' + _json(obj["id"])
            # The method and tool of a response are its request's (what ctx.method and ctx.tool say, read here
            # without their property chains: this runs twice a call).
            method = obj.get("method")
            called = obj if method == "tools/call" else None
            request = ctx.request
            if request is not None:
                called = None
                asked = request.obj.get("method") if isinstance(request.obj, dict) else None
                if isinstance(asked, str):
                    method = method or asked
                    if asked == "tools/call":
                        called = request.obj
            if method:
                members += ',"method":' + _json(method)
            if called is not None:
                params = called.get("params")
                tool = params.get("name") if isinstance(params, dict) else None
                if isinstance(tool, str):
                    members += ',"tool":' + encode_basestring(tool)
            if "error" in obj:
                members += _FAILURE
            elif "result" in obj:
                result = obj["result"]
                members += _FAILURE if isinstance(result, dict) and result.get("isError") is True else _SUCCESS
        if ctx.notes:
            members += ',"notes":' + dumps(ctx.notes)
        self._write("message", members, (ctx.record or msg).raw)
        return msg

    def _write(self, type_: str, members: str, message: bytes | None = None) -> None:
        try:
            if self._unrecorded:
                self.writer.write("error", {"event": "unrecorded", "count": self._unrecorded})
                self._unrecorded = 0
            self.writer.write_members(type_, members, message)
        except GuardError as exc:
            if not self._unsafe_continue:
                raise
            self._unrecorded += 1
            log.error("%s; forwarding anyway (transcripts.unsafe_continue_on_error)", exc)

    def on_event(self, event: dict[str, Any]) -> None:
        """Relay's own decisions (errors it answered with, faults it saw, grants it obtained) belong in the
        transcript too."""
        kind = event.get("event")
        self._write(kind if kind in ("grant", "approval") else "error", dumps(event)[1:-1] if event else "")

    def _ack(self, seq: int, head: str) -> None:
        if self.writer.closed or self.shipper is None:
            return  # acknowledged after the seal: the cursor keeps it, the sealed file takes no more records
        try:
            self.writer.write("ack", {"collector": self.shipper.display_url, "acked": seq, "head": head})
        except GuardError as exc:
            log.error("could not record the collector's acknowledgement: %s", exc)

    async def serve(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.writer.run_group_commit)
            if self.shipper is not None:
                tg.start_soon(self.shipper.run)
                tg.start_soon(self._ship_backlog)

    async def _ship_backlog(self) -> None:
        """Earlier sessions that did not reach the collector (it was down, relay was killed) go now."""
        from relay.transcript.ship import ship_backlog

        assert self.shipper is not None
        reports = await ship_backlog(self.shipper.config, self.writer.directory, timeout=self.BACKLOG_SECONDS,
                                     exclude={self.writer.session_id})
        late = [r for r in reports if r.error]
        if late:
            log.warning("%d earlier session(s) not yet at the collector (first: %s: %s)", len(late),
                        late[0].session, late[0].error)

    async def aclose(self, reason: str = "client_closed") -> None:
        if self.writer.closed:
            return
        self.writer.seal(reason, self._host_key)
        if self.shipper is not None and not await self.shipper.drain(self.DRAIN_SECONDS):
            log.warning("transcript %s is not fully at the collector yet (%s); it is shipped at the next start "
                        "or with `relay transcripts ship`", self.writer.session_id, self.shipper.error)
