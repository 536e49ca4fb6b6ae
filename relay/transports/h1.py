"""A small HTTP/1.1 client for the data path, on anyio sockets with h11 doing the parsing.

Why not httpx: every relayed request pays for the client's overhead, and on this path httpx costs about
0.5 ms a request where h11 on a plain socket costs about 0.1 ms (benchmarks/). Relay needs little of
what httpx offers here: no redirects, no cookies, no proxies, no HTTP/2; just keep-alive connections,
TLS with verification, streamed bodies and strict parsing, which h11 provides.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import anyio
import h11
from anyio.abc import ByteStream

CHUNK = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024
IDLE_PER_ORIGIN = 16


class HttpError(Exception):
    """The exchange failed below HTTP semantics: no connection, a broken one, or a malformed answer."""


class ConnectFailed(HttpError):
    pass


class ProtocolFailed(HttpError):
    pass


class BodyTooLarge(Exception):
    pass


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


Origin = tuple[str, str, int]


class _Connection:
    __slots__ = ("h11", "origin", "received", "stream")

    def __init__(self, stream: ByteStream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.received = False  # any byte of the current answer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)

    async def next_event(self) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolFailed(f"malformed HTTP response: {exc}") from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive(CHUNK)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                data = b""
            except OSError as exc:
                raise ProtocolFailed(f"connection broke: {exc}") from None
            if data:
                self.received = True
            self.h11.receive_data(data)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self.stream.aclose()


class Response:
    """Status and headers are read; the body streams through `aiter_raw` (or `read`)."""

    def __init__(self, client: HttpClient, conn: _Connection, event: h11.Response) -> None:
        self._client = client
        self._conn: _Connection | None = conn
        self.status_code: int = event.status_code
        self.reason_phrase = event.reason.decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.headers = headers  # names in lower case (h11 lower-cases them)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                event = await conn.next_event()
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ProtocolFailed("server closed the connection in the middle of a response")
        except BaseException:
            await self.aclose()
            raise
        self._conn = None
        await self._client._release(conn)

    async def read(self, limit: int) -> bytes:
        """The whole body, or BodyTooLarge as soon as it passes `limit` (memory stays bounded)."""
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self.aclose()
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.aiter_raw():
            size += len(chunk)
            if size > limit:
                await self.aclose()
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Abandon the rest of the body: the connection cannot be reused."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()


class HttpClient:
    """Keep-alive connections per origin; one request at a time on each (HTTP/1.1 has no multiplexing)."""

    def __init__(self, headers: Mapping[str, str], *, connect_timeout: float = 10.0) -> None:
        self._base = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._connect_timeout = connect_timeout
        self._idle: dict[Origin, list[_Connection]] = defaultdict(list)
        self._closed = False

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise ConnectFailed(f"not an http(s) URL: {url}")
        origin: Origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        wire = [(b"host", host.encode("idna" if not host.isascii() else "ascii")), *self._base]
        wire += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            wire.append((b"content-length", str(len(body)).encode()))
        request = h11.Request(method=method, target=target.encode("ascii", "strict"), headers=wire)
        # A reused connection may have been closed by the server while idle; that failure shows before
        # any byte of the answer, and the request is then sent again once on a fresh connection.
        while True:
            conn, reused = await self._connection(origin)
            try:
                return await self._exchange(conn, request, body)
            except _Stale:
                await conn.aclose()
                if not reused:
                    raise ProtocolFailed("server closed the connection without answering") from None
            except BaseException:
                await conn.aclose()
                raise

    async def _exchange(self, conn: _Connection, request: h11.Request, body: bytes) -> Response:
        data = conn.h11.send(request) or b""
        if body:
            data += conn.h11.send(h11.Data(data=body)) or b""
        data += conn.h11.send(h11.EndOfMessage()) or b""
        conn.received = False
        try:
            await conn.stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise _Stale from None
        while True:
            try:
                event = await conn.next_event()
            except ProtocolFailed:
                if not conn.received:
                    raise _Stale from None
                raise
            if isinstance(event, h11.ConnectionClosed):
                raise _Stale
            if isinstance(event, h11.Response):
                if sum(len(k) + len(v) for k, v in event.headers) > MAX_HEADER_BYTES:
                    raise ProtocolFailed(f"response headers larger than {MAX_HEADER_BYTES} bytes")
                return Response(self, conn, event)
            # an informational (1xx) response: keep reading

    async def _connection(self, origin: Origin) -> tuple[_Connection, bool]:
        idle = self._idle[origin]
        while idle:
            conn = idle.pop()
            if conn.h11.our_state is h11.IDLE and conn.h11.their_state is h11.IDLE:
                return conn, True
            await conn.aclose()
        scheme, host, port = origin
        try:
            with anyio.fail_after(self._connect_timeout):
                if scheme == "https":
                    stream: ByteStream = await anyio.connect_tcp(host, port, tls=True, ssl_context=_tls_context(),
                                                                 tls_hostname=host)
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise ConnectFailed(f"timed out connecting to {host}:{port}") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        return _Connection(stream, origin), False

    async def _release(self, conn: _Connection) -> None:
        try:
            conn.h11.start_next_cycle()
        except h11.LocalProtocolError:
            await conn.aclose()
            return
        idle = self._idle[conn.origin]
        if self._closed or len(idle) >= IDLE_PER_ORIGIN:
            await conn.aclose()
        else:
            idle.append(conn)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                await conn.aclose()
            idle.clear()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Stale(Exception):
    """The connection died before answering (internal: triggers one retry on a fresh connection)."""
