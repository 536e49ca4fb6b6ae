"""Newline-delimited JSON-RPC framing with a bounded buffer (stdio, both sides)."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream

from relay.jsonrpc import REQUEST_TOO_LARGE, Direction, Message, ParseFailure
from relay.transports import Fault

CHUNK = 256 * 1024
_HEAD, _TAIL = 4096, 512
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")')


def guess_ids(head: bytes, tail: bytes) -> tuple[Any, ...]:
    """Candidate ids of a message too large to parse, from its first and last bytes.

    Only a hint: the session uses a candidate only if it names a request that is really pending, so that
    the requester gets an error instead of waiting forever.
    """
    found: list[Any] = []
    for blob, pick in ((head, 0), (tail, -1)):
        matches = _ID.findall(blob)
        if matches:
            try:
                value = json.loads(matches[pick])
            except ValueError:
                continue
            if value not in found:
                found.append(value)
    return tuple(found)


class LineReader:
    """Splits a byte stream into lines without ever holding more than `limit` bytes of one line."""

    def __init__(self, stream: ByteReceiveStream, limit: int, direction: Direction) -> None:
        self._stream = stream
        self._limit = limit
        self._direction = direction
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already known to hold no newline
        self._eof = False
        self._head = b""  # of the last oversize line, to find whom it concerned
        self._tail = b""

    async def receive(self) -> Message | Fault:
        """The next message or fault; raises anyio.EndOfStream at the end of the stream."""
        while True:
            line = await self._next_line()
            if line is None:
                return Fault(f"message larger than the limit of {self._limit} bytes; dropped", REQUEST_TOO_LARGE,
                             guess_ids(self._head, self._tail))
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
                if nl > self._limit:
                    self._head, self._tail = bytes(buf[:_HEAD]), bytes(buf[max(0, nl - _TAIL):nl])
                    del buf[: nl + 1]
                    self._scan = 0
                    return None
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                self._scan = 0
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
        # Memory stays bounded: throw away the oversized line up to its newline, keeping its ends.
        buf = self._buf
        self._head, self._tail = bytes(buf[:_HEAD]), b""
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                self._tail = (self._tail + bytes(buf[:nl]))[-_TAIL:]
                del buf[: nl + 1]
                self._scan = 0
                return
            self._tail = (self._tail + bytes(buf[-_TAIL:]))[-_TAIL:]
            buf.clear()
            self._scan = 0
            try:
                buf += await self._stream.receive(CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._eof = True
                return
