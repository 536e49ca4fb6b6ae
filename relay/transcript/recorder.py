"""The recorder guard: every relayed message becomes a signed transcript record before it is forwarded.

A record that cannot be written stops the message (fail closed), unless the operator chose
`transcripts.unsafe_continue_on_error`; then the gap is logged and counted in the transcript once writing works
again. Relay's own decisions (errors it answered with, faults it saw) are recorded too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.errors import GuardError
from relay.jsonrpc import Message
from relay.pipeline import Context
from relay.transcript.writer import SessionWriter

if TYPE_CHECKING:
    from relay.transcript.ship import Shipper

log = logging.getLogger("relay.transcript")


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
        fields: dict[str, Any] = {"dir": msg.direction.short, "kind": msg.kind.value}
        if isinstance(obj, dict):
            if "id" in obj:
                fields["id"] = obj["id"]
            method = obj.get("method") or ctx.method
            if method:
                fields["method"] = method
            tool = ctx.tool if ctx.request is not None else (msg.params.get("name") if method == "tools/call" else None)
            if isinstance(tool, str):
                fields["tool"] = tool
            if "error" in obj:
                fields["outcome"] = "failure"
            elif "result" in obj:
                result = obj["result"]
                failed = isinstance(result, dict) and result.get("isError") is True
                fields["outcome"] = "failure" if failed else "success"
        if ctx.notes:
            fields["notes"] = ctx.notes
        self._write("message", fields, (ctx.record or msg).raw)
        return msg

    def _write(self, type_: str, fields: dict[str, Any], message: bytes | None = None) -> None:
        try:
            if self._unrecorded:
                self.writer.write("error", {"event": "unrecorded", "count": self._unrecorded})
                self._unrecorded = 0
            self.writer.write(type_, fields, message)
        except GuardError as exc:
            if not self._unsafe_continue:
                raise
            self._unrecorded += 1
            log.error("%s; forwarding anyway (transcripts.unsafe_continue_on_error)", exc)

    def on_event(self, event: dict[str, Any]) -> None:
        """Relay's own decisions (errors it answered with, faults it saw, grants it obtained) belong in the
        transcript too."""
        kind = event.get("event")
        self._write(kind if kind in ("grant", "approval") else "error", event)

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
