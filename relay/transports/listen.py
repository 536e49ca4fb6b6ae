"""Serving local MCP clients over HTTP (`relay run --listen`): Streamable HTTP at /mcp, legacy SSE at /sse.

Each client session gets its own relay session and its own upstream connection. The server binds loopback
only and checks Host and Origin on every request (DNS-rebinding protection), plus an optional bearer token.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import TaskGroup

from relay.errors import UsageError
from relay.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    Direction,
    Kind,
    Message,
    ParseFailure,
    dumps,
    error_obj,
    request_ids,
)
from relay.transports import Fault
from relay.transports.listen_session import PAUSE, ClientStream, ListenSession
from relay.transports.mcp_headers import HEADER_MISMATCH, mismatch, request_version
from relay.transports.sse_codec import encode_event

log = logging.getLogger("relay.listen")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SESSION_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
# 2026-07-28 gives JSON-RPC errors an HTTP status of their own (the rest stay 200).
_ERROR_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


@dataclass(frozen=True)
class ListenOptions:
    host: str
    port: int
    allowed_origins: frozenset[str] = frozenset()
    token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, listen: str, origins: list[str], token_env: str | None) -> ListenOptions:
        host, sep, port_text = listen.rpartition(":")
        if not sep or not port_text.isdigit() or not host:
            raise UsageError(f"--listen wants HOST:PORT, e.g. 127.0.0.1:8765, got '{listen}'")
        bare = host.strip("[]")
        if bare != "localhost":
            try:
                loopback = ipaddress.ip_address(bare).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise UsageError(f"--listen binds loopback only; '{host}' is not a loopback address",
                                 hint="use 127.0.0.1, ::1 or localhost")
        token = None
        if token_env is not None:
            token = os.environ.get(token_env)
            if not token:
                raise UsageError(f"--listen-token-env: environment variable {token_env} is empty or not set")
        return cls(bare, int(port_text), frozenset(o.rstrip("/") for o in origins), token)


def _origin_allowed(origin: str, extra: frozenset[str]) -> bool:
    if origin.rstrip("/") in extra:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_NAMES


def _host_allowed(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in LOOPBACK_NAMES


# -- the ASGI application -------------------------------------------------------------------------------


SessionRunner = Callable[[ListenSession], Awaitable[None]]


class ListenApp:
    def __init__(self, options: ListenOptions, limit: int, run_session: SessionRunner, tg: TaskGroup) -> None:
        self.options = options
        self.limit = limit
        self.run_session = run_session
        self.tg = tg
        self.sessions: dict[str, ListenSession] = {}
        self._stateless: ListenSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not _host_allowed(headers.get("host", "")):
            await _plain(send, 421, "Host not allowed (relay answers loopback names only)")
            return
        origin = headers.get("origin")
        if origin is not None and not _origin_allowed(origin, self.options.allowed_origins):
            log.warning("refused a request from Origin %s", origin[:100])
            await _plain(send, 403, "Origin not allowed")
            return
        if self.options.token is not None:
            given = headers.get("authorization", "")
            expected = "Bearer " + self.options.token
            if not hmac.compare_digest(given.encode(), expected.encode()):
                await _plain(send, 401, "missing or wrong bearer token", {"www-authenticate": 'Bearer realm="relay"'})
                return
        path, method = scope["path"], scope["method"]
        if path == "/mcp":
            handler = {"POST": self._post, "GET": self._get, "DELETE": self._delete}.get(method)
            if handler is None:
                await _plain(send, 405, "method not allowed", {"allow": "GET, POST, DELETE"})
                return
            await handler(headers, receive, send)
        elif path == "/sse" and method == "GET":
            await self._legacy_stream(receive, send)
        elif path == "/messages" and method == "POST":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            await self._legacy_post(query.get("session_id", [""])[0], receive, send)
        else:
            await _plain(send, 404, "not found; the MCP endpoint is /mcp (legacy SSE: /sse)")

    # Streamable HTTP ---------------------------------------------------------------------------------

    async def _post(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        accept = headers.get("accept", "")
        if "text/event-stream" not in accept and "application/json" not in accept and "*/*" not in accept:
            await _jsonrpc_error(send, 406, None, INVALID_REQUEST,
                                 "Accept must list application/json and text/event-stream")
            return
        body = await _read_body(receive, self.limit)
        if body is None:
            await _jsonrpc_error(send, 413, None, -32001, f"message larger than the limit of {self.limit} bytes")
            return
        try:
            msg = Message.parse(body, Direction.CLIENT_TO_SERVER)
        except ParseFailure as exc:
            await _jsonrpc_error(send, 400, None, exc.code, exc.reason)
            return
        version = headers.get("mcp-protocol-version")
        sid = headers.get("mcp-session-id")
        modern = version not in (None, *SESSION_VERSIONS)
        if _is_initialize(msg) and not modern:
            session = self._new_session()
        elif sid is not None and version not in (None, *SESSION_VERSIONS):
            await _jsonrpc_error(send, 400, msg.id, INVALID_REQUEST, f"unsupported MCP-Protocol-Version {version!r}")
            return
        elif sid is not None:
            found = self.sessions.get(sid)
            if found is None or found.closed.is_set():
                await _jsonrpc_error(send, 404, msg.id, INVALID_REQUEST, "unknown or expired session; initialize again")
                return
            session = found
        elif msg.kind is not Kind.BATCH and (modern or request_version(msg.params)):
            await self._post_stateless(msg, headers, receive, send)
            return
        else:
            await _jsonrpc_error(send, 400, msg.id, INVALID_REQUEST, "missing Mcp-Session-Id header; initialize first")
            return
        if not request_ids(msg):
            await session.deliver(msg)
            await _plain(send, 202, "")
            return
        stream = session.open_post(msg, version)
        stream.attached = True
        await session.deliver(msg)
        try:
            await self._answer(session, stream, receive, send)
        finally:
            session.release(stream)

    async def _post_stateless(self, msg: Message, headers: dict[str, str], receive: Receive, send: Send) -> None:
        """A 2026-07-28 request: no session; one shared relay session serves them all."""
        session = self._stateless_session()
        method = msg.method
        if msg.kind is Kind.REQUEST:
            missing = _missing_meta(msg.params)
            if missing is not None:
                await _jsonrpc_error(send, 400, msg.id, INVALID_PARAMS, missing)
                return
        if method is not None:
            problem = mismatch(headers, method, msg.params, session.mirror)
            if problem is not None:
                await _jsonrpc_error(send, 400, msg.id, HEADER_MISMATCH, problem)
                return
        if msg.kind is not Kind.REQUEST:
            await session.deliver(msg)
            await _plain(send, 202, "")
            return
        aliased = session.alias(msg)
        stream = session.open_post(aliased)
        stream.attached = True
        await session.deliver(aliased)
        try:
            answered = await self._answer(session, stream, receive, send)
        finally:
            session.release(stream)
        if not answered:
            # 2026-07-28 cancels by closing the response stream; upstream hears it the way its wire allows.
            session.forget_alias(aliased)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": aliased.obj["id"], "reason": "client closed the request's stream"}}
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await session.deliver(Message.build(cancel, Direction.CLIENT_TO_SERVER))

    def _stateless_session(self) -> ListenSession:
        if self._stateless is None or self._stateless.closed.is_set():
            self._stateless = self._start(ListenSession(None))
        return self._stateless

    def _new_session(self, legacy: bool = False) -> ListenSession:
        session = self._start(ListenSession(secrets.token_urlsafe(24), legacy=legacy))
        assert session.id is not None
        self.sessions[session.id] = session
        return session

    def _start(self, session: ListenSession) -> ListenSession:
        """Run a relay session (with its own upstream connection) for this client session."""

        async def run() -> None:
            try:
                await self.run_session(session)
            except Exception as exc:
                # The upstream's failure reached this client's pending requests as errors already.
                log.error("session ended: %s", exc)
            finally:
                session.end()
                if session.id is not None:
                    self.sessions.pop(session.id, None)

        self.tg.start_soon(run)
        return session

    async def _get(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        if "text/event-stream" not in headers.get("accept", ""):
            await _plain(send, 406, "Accept must list text/event-stream")
            return
        if "mcp-session-id" not in headers:
            # No session, no stream: what a 2026-07-28 server answers too.
            await _plain(send, 405, "no standalone stream without a session", {"allow": "POST"})
            return
        session = self.sessions.get(headers["mcp-session-id"])
        if session is None or session.closed.is_set():
            await _plain(send, 404, "unknown session")
            return
        last = headers.get("last-event-id")
        if last is not None:
            found = await session.resume(last.strip())
            if found is None:
                await _plain(send, 404, "unknown or expired event id; nothing to resume")
                return
            stream, replay = found
        else:
            stream, replay = session.open_get(headers.get("mcp-protocol-version")), []
            stream.attached = True
        try:
            await self._sse(session, stream, receive, send, replay)
        finally:
            session.release(stream)

    async def _delete(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        if "mcp-session-id" not in headers:
            await _plain(send, 405, "no session to delete", {"allow": "POST"})
            return
        session = self.sessions.pop(headers["mcp-session-id"], None)
        if session is None:
            await _plain(send, 404, "unknown session")
            return
        session.end()
        await _plain(send, 200, "")

    async def _answer(self, session: ListenSession, stream: ClientStream, receive: Receive, send: Send) -> bool:
        """Answer a POST with the messages routed to its stream, until every request in it is answered.

        Returns False if the client went away (or was sent away to poll) before that."""
        first: list[object] = []
        disconnected = False

        async def wait_first() -> None:
            first.append(await stream.receive.receive())
            tg.cancel_scope.cancel()

        async def watch() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_first)
            tg.start_soon(watch)
        if first and first[0] is PAUSE:
            # The server closed its stream before sending anything: the client gets the same (SEP-1699).
            return await self._sse(session, stream, receive, send, [], paused=True)
        if disconnected or not first or not isinstance(first[0], Message):
            if not disconnected:
                await _jsonrpc_error(send, 502, None, -32000, "relay session ended before the server answered")
            return False
        msg = first[0]
        # Stateless answers are plain JSON when they can be (their errors carry HTTP statuses); session
        # answers are SSE streams, as the SDK servers send them, so clients see no difference through relay.
        if session.id is None and msg.kind in (Kind.RESPONSE, Kind.ERROR) and stream.pending is not None \
                and len(stream.pending) == 1:
            stream.event(msg, with_id=False)
            status = 200
            if msg.kind is Kind.ERROR:
                code = (msg.obj.get("error") or {}).get("code")
                status = _ERROR_STATUS.get(code, 200) if isinstance(code, int) else 200
            await send({"type": "http.response.start", "status": status,
                        "headers": _h({"content-type": "application/json"})})
            await send({"type": "http.response.body", "body": msg.raw})
            return True
        return await self._sse(session, stream, receive, send, [], first=msg)

    async def _sse(self, session: ListenSession, stream: ClientStream, receive: Receive, send: Send,
                   replay: list[bytes], first: Message | None = None, paused: bool = False) -> bool:
        """Write `stream` as an SSE response until it is done (every request answered), the client goes,
        or relay sends it away to poll. Returns whether it is done."""
        headers = {"content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no"}
        if session.id is not None:
            headers["mcp-session-id"] = session.id
        await send({"type": "http.response.start", "status": 200, "headers": _h(headers)})
        with_ids = session.resumable

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            if stream.polling and not replay:
                await write(stream.priming())
            for data in replay:
                await write(data)
            if first is not None:
                await write(stream.event(first, with_ids))
            while not stream.done and not paused:
                item = await stream.receive.receive()
                if item is None or item is PAUSE:
                    break
                if isinstance(item, Message):
                    await write(stream.event(item, with_ids))
            tg.cancel_scope.cancel()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return stream.done

    # Legacy HTTP+SSE (2024-11-05) --------------------------------------------------------------------

    async def _legacy_stream(self, receive: Receive, send: Send) -> None:
        session = self._new_session(legacy=True)
        stream = session.open_get()
        await send({"type": "http.response.start", "status": 200, "headers": _h({
            "content-type": "text/event-stream", "cache-control": "no-store"})})
        await send({"type": "http.response.body", "more_body": True,
                    "body": encode_event(f"/messages?session_id={session.id}".encode(), event="endpoint")})
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                async for item in stream.receive:
                    if item is None:
                        break
                    if isinstance(item, Message):
                        await send({"type": "http.response.body", "body": stream.event(item, False), "more_body": True})
                tg.cancel_scope.cancel()
        finally:
            # The stream is the session: when the client goes, so does the session.
            session.end()
            self.sessions.pop(session.id or "", None)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _legacy_post(self, sid: str, receive: Receive, send: Send) -> None:
        session = self.sessions.get(sid)
        if session is None or not session.legacy:
            await _plain(send, 404, "unknown session")
            return
        body = await _read_body(receive, self.limit)
        if body is None:
            await _plain(send, 413, "message too large")
            return
        try:
            item: Message | Fault = Message.parse(body, Direction.CLIENT_TO_SERVER)
        except ParseFailure as exc:
            item = Fault(exc.reason, exc.code)
        await session.deliver(item)
        await _plain(send, 202, "Accepted")


_REQUIRED_META = ("io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities")


def _missing_meta(params: dict[str, Any]) -> str | None:
    """2026-07-28 requests carry what the handshake used to: their version and the client's capabilities."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return "a 2026-07-28 request needs params._meta with its protocol version and client capabilities"
    for key in _REQUIRED_META:
        if key not in meta:
            return f"params._meta lacks {key}"
    return None


def _is_initialize(msg: Message) -> bool:
    return msg.kind is Kind.REQUEST and msg.method == "initialize"


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _h(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _plain(send: Send, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": _h({"content-type": "text/plain; charset=utf-8", **(headers or {})})})
    await send({"type": "http.response.body", "body": text.encode()})


async def _jsonrpc_error(send: Send, status: int, id_: Any, code: int, message: str) -> None:
    body = dumps(error_obj(id_, code, message)).encode()
    await send({"type": "http.response.start", "status": status, "headers": _h({"content-type": "application/json"})})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
