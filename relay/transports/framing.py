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
_TAIL_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")\s*}\s*$')


def _top_level_id(head: bytes) -> bytes | None:
    """The value of an "id" member of the outermost object, scanning the first bytes of a message."""
    depth, i, n = 0, 0, len(head)
    while i < n:
        c = head[i]
        if c == 0x22:  # a string: skip it whole, noting whether it is a member name "id" at depth 1
            j = i + 1
            while j < n and head[j] != 0x22:
                j += 2 if head[j] == 0x5C else 1
            if depth == 1 and head[i:j + 1] == b'"id"':
                m = re.match(rb'\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")', head[j + 1:])
                if m:
                    return m.group(1)
            i = j + 1
            continue
        if c in b"{[":
            depth += 1
        elif c in b"}]":
            depth -= 1
        i += 1
    return None


def guess_ids(head: bytes, tail: bytes) -> tuple[Any, ...]:
    """Candidate ids of a message too large to parse: an "id" member of the outermost object, found at
    the start of the message or as its very last member.

    Only a hint: the session uses a candidate only where it makes sense (a pending request for an
    answer from the server, a request not already pending for one from the client), so that the
    requester gets an error instead of waiting forever.
    """
    found: list[Any] = []
    tail_match = _TAIL_ID.search(tail)
    for raw in (_top_level_id(head), tail_match.group(1) if tail_match else None):
        if raw is None:
            continue
        try:
            value = json.loads(raw)
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
