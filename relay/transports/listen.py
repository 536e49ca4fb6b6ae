"""Serving local MCP clients over HTTP (`relay run --listen`): Streamable HTTP at /mcp, legacy SSE at /sse.

Each client session gets its own relay session and its own upstream connection. The server binds loopback
only and checks Host and Origin on every request (DNS-rebinding protection), plus an optional bearer token.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

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
from relay.transports.mcp_headers import HEADER_MISMATCH, HeaderMirror, mismatch, request_version
from relay.transports.sse_codec import encode_event

log = logging.getLogger("relay.listen")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SUBSCRIPTION_META = "io.modelcontextprotocol/subscriptionId"
SESSION_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
# 2026-07-28 gives JSON-RPC errors an HTTP status of their own (the rest stay 200).
_ERROR_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
BACKLOG = 1000


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


# -- one client session ---------------------------------------------------------------------------------


class _Stream:
    """An open SSE response towards the client (a POST's answer stream or the GET stream)."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Message | None](math.inf)


class ListenSession:
    """The client side of one relay session, fed by HTTP requests. Implements the Transport interface."""

    def __init__(self, session_id: str | None, legacy: bool = False) -> None:
        self.id = session_id
        self.legacy = legacy
        self._in_send: MemoryObjectSendStream[Message | Fault]
        self._in_recv: MemoryObjectReceiveStream[Message | Fault]
        self._in_send, self._in_recv = anyio.create_memory_object_stream[Message | Fault](math.inf)
        self._by_id: dict[tuple[bool, Any], _Stream] = {}
        self._by_token: dict[tuple[bool, Any], _Stream] = {}
        self._posts: list[_Stream] = []
        self.get_stream: _Stream | None = None
        self._backlog: list[Message] = []
        self.closed = anyio.Event()
        self.mirror = HeaderMirror()
        self._tools_list: set[tuple[bool, Any]] = set()
        # Stateless (2026-07-28) requests from many clients share one session: relay-unique ids.
        self._aliases: dict[tuple[bool, Any], Any] = {}
        self._token_aliases: dict[tuple[bool, Any], Any] = {}
        self._counter = 0

    # Transport interface, as seen by the relay Session --------------------------------------------

    async def receive(self) -> Message | Fault:
        return await self._in_recv.receive()

    async def send(self, msg: Message) -> None:
        obj = msg.obj
        if isinstance(obj, dict):
            if "method" not in obj:
                key = _key(obj.get("id"))
                if key in self._tools_list:
                    self._tools_list.discard(key)
                    self.mirror.learn_tools(obj.get("result"))
            elif self._aliases and isinstance(msg.params.get("_meta"), dict) and SUBSCRIPTION_META in msg.params["_meta"]:
                # 2026-07-28 subscriptions/listen: its notifications belong to the listen request's stream.
                meta = msg.params["_meta"]
                key = _key(meta[SUBSCRIPTION_META])
                stream = self._by_id.get(key)
                original = self._aliases.get(key, _NO_ALIAS)
                if original is not _NO_ALIAS:
                    msg = msg.replace({**obj, "params": {**msg.params, "_meta": {**meta, SUBSCRIPTION_META: original}}})
                if stream is not None:
                    await self._put(stream, msg)
                    return
            elif self._token_aliases and obj.get("method") == "notifications/progress":
                token = self._token_aliases.get(_key(msg.params.get("progressToken")))
                if token is not None:
                    # Routed by the alias, delivered with the client's own token.
                    stream = self._by_token.get(_key(msg.params.get("progressToken")))
                    msg = msg.replace({**obj, "params": {**msg.params, "progressToken": token}})
                    if stream is not None:
                        await self._put(stream, msg)
                        return
        stream = self._route(msg)
        if isinstance(obj, dict) and "method" not in obj and self._aliases:
            original = self._aliases.pop(_key(obj.get("id")), _NO_ALIAS)
            if original is not _NO_ALIAS:
                msg = msg.replace({**obj, "id": original})
        if stream is None:
            if len(self._backlog) >= BACKLOG:
                log.warning("client has no open stream; dropping a %s", msg.method or msg.kind.value)
                return
            self._backlog.append(msg)
            return
        await self._put(stream, msg)

    async def _put(self, stream: _Stream, msg: Message) -> None:
        try:
            await stream.send.send(msg)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.warning("client stream closed before a %s could be delivered", msg.method or msg.kind.value)

    def alias(self, msg: Message) -> Message:
        """The request with a relay-unique id (and progress token), remembered to be undone on the way back."""
        self._counter += 1
        internal = f"relay-{self._counter}"
        obj = dict(msg.obj)
        self._aliases[_key(internal)] = obj["id"]
        obj["id"] = internal
        params = obj.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(params, dict) and isinstance(meta, dict) and "progressToken" in meta:
            token = f"{internal}-progress"
            self._token_aliases[_key(token)] = meta["progressToken"]
            obj["params"] = {**params, "_meta": {**meta, "progressToken": token}}
        return msg.replace(obj)

    def forget_alias(self, msg: Message) -> None:
        self._aliases.pop(_key(msg.obj.get("id")), None)
        meta = msg.params.get("_meta")
        if isinstance(meta, dict):
            self._token_aliases.pop(_key(meta.get("progressToken")), None)

    async def aclose(self) -> None:
        self.end()

    # HTTP side ---------------------------------------------------------------------------------------

    async def deliver(self, item: Message | Fault) -> None:
        await self._in_send.send(item)

    def end(self) -> None:
        """The client deleted the session or relay stops: the relay Session sees end of input."""
        self._in_send.close()
        for stream in [*self._posts, *([self.get_stream] if self.get_stream else [])]:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.send.send_nowait(None)
        self.closed.set()

    def open_post(self, msg: Message) -> _Stream:
        stream = _Stream()
        for item in msg.obj if msg.kind is Kind.BATCH else [msg.obj]:
            if isinstance(item, dict) and "method" in item and "id" in item:
                self._by_id[_key(item["id"])] = stream
                if item["method"] == "tools/list":
                    self._tools_list.add(_key(item["id"]))
                meta = item.get("params", {}).get("_meta") if isinstance(item.get("params"), dict) else None
                if isinstance(meta, dict) and "progressToken" in meta:
                    self._by_token[_key(meta["progressToken"])] = stream
        self._posts.append(stream)
        return stream

    def close_post(self, stream: _Stream) -> None:
        stream.receive.close()
        with contextlib.suppress(ValueError):
            self._posts.remove(stream)
        for table in (self._by_id, self._by_token):
            for key in [k for k, v in table.items() if v is stream]:
                del table[key]

    def open_get(self) -> _Stream:
        stream = _Stream()
        self.get_stream = stream
        for msg in self._backlog:
            stream.send.send_nowait(msg)
        self._backlog.clear()
        return stream

    def close_get(self, stream: _Stream) -> None:
        stream.receive.close()
        if self.get_stream is stream:
            self.get_stream = None

    def _route(self, msg: Message) -> _Stream | None:
        if self.legacy:
            return self.get_stream
        obj = msg.obj
        if isinstance(obj, dict):
            if "method" not in obj:
                stream = self._by_id.pop(_key(obj.get("id")), None)
                if stream is not None:
                    return stream
            elif obj.get("method") == "notifications/progress":
                token = msg.params.get("progressToken")
                stream = self._by_token.get(_key(token))
                if stream is not None:
                    return stream
        # Server-initiated: the stream of the latest request still open (the SDKs send messages
        # related to a request there), else the standalone GET stream.
        if self._posts:
            return self._posts[-1]
        return self.get_stream


def _key(value: Any) -> tuple[bool, Any]:
    return (isinstance(value, str), value)


_NO_ALIAS = object()


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
        stream = session.open_post(msg)
        await session.deliver(msg)
        extra = {"mcp-session-id": session.id} if session.id else {}
        try:
            await self._answer(stream, receive, send, extra, set(request_ids(msg)))
        finally:
            session.close_post(stream)

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
        await session.deliver(aliased)
        try:
            answered = await self._answer(stream, receive, send, {}, {aliased.obj["id"]}, stateless=True)
        finally:
            session.close_post(stream)
        if not answered:
            # 2026-07-28 cancels by closing the response stream; upstream hears it the way its wire allows.
            session.forget_alias(aliased)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": aliased.obj["id"], "reason": "client closed the request's stream"}}
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await session.deliver(Message.build(cancel, Direction.CLIENT_TO_SERVER))

    def _stateless_session(self) -> ListenSession:
        if self._stateless is None or self._stateless.closed.is_set():
            session = ListenSession(None)
            self._stateless = session

            async def run() -> None:
                try:
                    await self.run_session(session)
                except Exception as exc:
                    log.error("stateless session ended: %s", exc)
                finally:
                    session.end()

            self.tg.start_soon(run)
        return self._stateless

    def _new_session(self, legacy: bool = False) -> ListenSession:
        session = ListenSession(secrets.token_urlsafe(24), legacy=legacy)
        assert session.id is not None
        self.sessions[session.id] = session

        async def run() -> None:
            try:
                await self.run_session(session)
            except Exception as exc:
                log.error("session ended: %s", exc)
            finally:
                session.end()
                self.sessions.pop(session.id or "", None)

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
        if session is None:
            await _plain(send, 404, "unknown session")
            return
        stream = session.open_get()
        await send({"type": "http.response.start", "status": 200, "headers": _h({
            "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no",
            "mcp-session-id": session.id or ""})})
        try:
            await self._sse(stream, receive, send, None)
        finally:
            session.close_get(stream)

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

    async def _answer(self, stream: _Stream, receive: Receive, send: Send, headers: dict[str, str],
                      until: set[Any], *, stateless: bool = False) -> bool:
        """Answer a POST with the messages routed to `stream`, until every request in it is answered.

        Returns False if the client went away first."""
        first: list[Message | None] = []
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
        if disconnected or not first or first[0] is None:
            if not disconnected:
                await _jsonrpc_error(send, 502, None, -32000, "relay session ended before the server answered")
            return False
        msg = first[0]
        # Stateless answers are plain JSON when they can be (their errors carry HTTP statuses); session
        # answers are SSE streams, as the SDK servers send them, so clients see no difference through relay.
        if stateless and msg.kind in (Kind.RESPONSE, Kind.ERROR) and len(until) == 1:
            status = 200
            if msg.kind is Kind.ERROR:
                code = (msg.obj.get("error") or {}).get("code")
                status = _ERROR_STATUS.get(code, 200) if isinstance(code, int) else 200
            await send({"type": "http.response.start", "status": status,
                        "headers": _h({"content-type": "application/json", **headers})})
            await send({"type": "http.response.body", "body": msg.raw})
            return True
        await send({"type": "http.response.start", "status": 200, "headers": _h({
            "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no", **headers})})
        done = await self._sse(stream, receive, send, until, msg)
        return done

    async def _sse(self, stream: _Stream, receive: Receive, send: Send, until: set[Any] | None,
                   first: Message | None = None) -> bool:
        """Write messages as SSE until every id in `until` is answered (or, for a GET, until the end)."""
        answered = until is None

        async def write(msg: Message) -> bool:
            await send({"type": "http.response.body", "body": encode_event(msg.raw, event="message"), "more_body": True})
            if until is not None:
                for item in msg.obj if msg.kind is Kind.BATCH else [msg.obj]:
                    if isinstance(item, dict) and "method" not in item:
                        until.discard(item.get("id"))
                return not until
            return False

        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            finished = first is not None and await write(first)
            if not finished:
                async for msg in stream.receive:
                    if msg is None or await write(msg):
                        break
            answered = until is None or not until
            tg.cancel_scope.cancel()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return answered

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
                async for msg in stream.receive:
                    if msg is None:
                        break
                    await send({"type": "http.response.body", "body": encode_event(msg.raw, event="message"), "more_body": True})
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
