"""Newline-delimited JSON-RPC framing with a bounded buffer (stdio, both sides)."""

from __future__ import annotations

import anyio
from anyio.abc import ByteReceiveStream

from relay.jsonrpc import REQUEST_TOO_LARGE, Direction, Message, ParseFailure
from relay.transports import Fault

CHUNK = 256 * 1024


class LineReader:
    """Splits a byte stream into lines without ever holding more than `limit` bytes of one line."""

    def __init__(self, stream: ByteReceiveStream, limit: int, direction: Direction) -> None:
        self._stream = stream
        self._limit = limit
        self._direction = direction
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already known to hold no newline
        self._eof = False

    async def receive(self) -> Message | Fault:
        """The next message or fault; raises anyio.EndOfStream at the end of the stream."""
        while True:
            line = await self._next_line()
            if line is None:
                return Fault(f"message larger than the limit of {self._limit} bytes; dropped", REQUEST_TOO_LARGE)
            if line.strip():
                try:
                    return Message.parse(line, self._direction)
                except ParseFailure as exc:
                    return Fault(exc.reason, exc.code)

    async def _next_line(self) -> bytes | None:
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._scan)
            if nl >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                self._scan = 0
                if len(line) > self._limit:
                    return None
                return line
            if len(buf) > self._limit:
                await self._discard_line()
                return None
            self._scan = len(buf)
            if self._eof:
                if buf:
                    # A last line without a newline still counts as a message.
                    line = bytes(buf)
                    buf.clear()
                    self._scan = 0
                    return line
                raise anyio.EndOfStream
            try:
                buf += await self._stream.receive(CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._eof = True

    async def _discard_line(self) -> None:
        # Memory stays bounded: throw away the oversized line up to its newline.
        buf = self._buf
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                del buf[: nl + 1]
                self._scan = 0
                return
            buf.clear()
            self._scan = 0
            try:
                buf += await self._stream.receive(CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._eof = True
                return
