"""The recorder guard: every relayed message becomes a signed transcript record before it is forwarded.

A record that cannot be written stops the message (fail closed), unless the operator chose
`transcripts.unsafe_continue_on_error`; then the gap is logged and counted in the transcript once writing works
again. Relay's own decisions (errors it answered with, faults it saw) are recorded too.
"""

from __future__ import annotations

import logging
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.errors import GuardError
from relay.jsonrpc import Message
from relay.pipeline import Context
from relay.transcript.writer import SessionWriter

log = logging.getLogger("relay.transcript")


class Recorder:
    name = "recorder"

    def __init__(self, writer: SessionWriter, host_key: Ed25519PrivateKey, *, unsafe_continue: bool = False) -> None:
        self.writer = writer
        self._host_key = host_key
        self._unsafe_continue = unsafe_continue
        self._unrecorded = 0

    async def intercept(self, msg: Message, ctx: Context) -> Message:
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
        """Relay's own decisions (errors it answered with, faults it saw) belong in the transcript too."""
        self._write("error", event)

    async def serve(self) -> None:
        await self.writer.run_group_commit()

    async def aclose(self, reason: str = "client_closed") -> None:
        self.writer.seal(reason, self._host_key)
