"""Server-Sent Events: a bounded, byte-level decoder and the matching encoder.

Written here rather than taken from httpx-sse because relay must bound the memory one event may take
(the message size limit) and wants the data as bytes, to parse it once as a JSON-RPC message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    data: bytes
    id: str | None  # the last event id in force when this event was dispatched
    oversize: bool = False


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the complete events. Keeps at most `limit` bytes of data.

    The events it returns do not depend on how the stream was cut into chunks.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._buf = b""
        self._skipping = False  # inside an over-long line: discard up to its end
        self._after_cr = False  # the last chunk ended with CR: an LF starting the next one belongs to it
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0
        self._oversize = False

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._after_cr = chunk[-1:] == b"\r"
        if self._skipping:
            end = _line_end(chunk)
            if end < 0:
                return []
            self._skipping = False
            if chunk[end:end + 2] == b"\r\n":
                end += 1
            chunk = chunk[end + 1:]
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        rest = lines.pop()
        events: list[Event] = []
        for line in lines:
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        if len(rest) > self.limit + 8:
            # One unfinished line already beyond the limit: drop it; only an over-long data line spoils its event.
            if rest.startswith(b"data"):
                self._oversize = True
                self._data.clear()
            rest = b""
            self._skipping = True
        self._buf = rest
        return events

    def _line(self, line: bytes) -> Event | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ':' comment (keep-alive)
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self.limit:
                self._oversize = True
                self._data.clear()
            elif not self._oversize:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, event, oversize = self._data, self._event or "message", self._oversize
        self._data, self._event, self._size, self._oversize = [], "", 0, False
        if oversize:
            return Event(event, b"", self.last_event_id, oversize=True)
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        if not payload:
            return None  # e.g. a priming event (an id and empty data): nothing to dispatch
        return Event(event, payload, self.last_event_id)


def encode_event(data: bytes, *, event: str | None = None, id: str | None = None) -> bytes:
    parts = []
    if event:
        parts.append(b"event: " + event.encode() + b"\n")
    if id is not None:
        parts.append(b"id: " + id.encode() + b"\n")
    if b"\n" in data or b"\r" in data:
        for line in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
            parts.append(b"data: " + line + b"\n")
    else:
        parts.append(b"data: " + data + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def _line_end(data: bytes) -> int:
    """Index of the first line terminator (LF or CR) in `data`, or -1."""
    lf, cr = data.find(b"\n"), data.find(b"\r")
    if lf < 0:
        return cr
    return lf if cr < 0 else min(lf, cr)
