"""Streamable HTTP towards an MCP server (revisions 2025-03-26 onwards).

Each client message is POSTed; answers come back as JSON or as an SSE stream per request. The optional
GET stream carries server-initiated messages. This layer keeps the session id and negotiated protocol
version, resumes broken streams with Last-Event-ID, and re-initialises transparently when the server
forgets the session (404).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import anyio
from anyio.abc import TaskGroup

from relay.errors import UpstreamError
from relay.jsonrpc import UPSTREAM_ERROR, Direction, Kind, Message, ParseFailure, dumps, request_ids
from relay.transports import Fault, Paused
from relay.transports.h1 import BodyTooLarge, HttpClient, HttpError, Response
from relay.transports.http import (
    PROTOCOL_HEADER,
    SESSION_HEADER,
    status_error,
    status_fault,
    too_large_fault,
    unreachable,
)
from relay.transports.mcp_headers import HeaderMirror, request_version
from relay.transports.sse_codec import SSEDecoder

log = logging.getLogger("relay.http")

ACCEPT_BOTH = "application/json, text/event-stream"
MAX_RESUMES = 5
STREAM_GRACE = 2.0
# Errors only a 2026-07-28 server sends; on a probe they mean "modern server", not "legacy SSE server".
MODERN_ERRORS = frozenset({-32020, -32021, -32022})


class FallBack(Exception):
    """The server rejected the first POST in a way that means it only speaks the legacy SSE transport."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class StreamableHttpTransport:
    def __init__(self, client: HttpClient, url: str, tg: TaskGroup, limit: int) -> None:
        self._client = client
        self._url = url
        self._tg = tg
        self._limit = limit
        self._send_in, self._incoming = anyio.create_memory_object_stream[Message | Fault | Paused | UpstreamError](
            math.inf)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._init_request: dict[str, Any] | None = None
        self._init_id: Any = None
        self._reinit_lock = anyio.Lock()
        self._reinit_count = 0
        self._get_stream_started = False
        self._closed = False
        self._mirror = HeaderMirror()
        self._tools_list_ids: set[Any] = set()
        # 2026-07-28 has no cancellation notification over HTTP: closing the request's stream cancels it.
        self._modern_exchanges: dict[Any, anyio.CancelScope] = {}

    # -- the Transport interface -------------------------------------------------------------------

    async def send(self, msg: Message) -> None:
        method = msg.method
        if msg.kind is Kind.REQUEST:
            if method == "initialize":
                self._init_request = msg.obj
                self._init_id = msg.obj.get("id")
            elif method == "tools/list":
                self._tools_list_ids.add(msg.obj.get("id"))
        elif method == "notifications/cancelled":
            scope = self._modern_exchanges.get(msg.params.get("requestId"))
            if scope is not None:
                scope.cancel()
                return
            if self.session_id is None and self.protocol_version is None:
                return  # no handshake: 2026-07-28, which has no cancellation notification over HTTP
        if request_ids(msg):
            # Requests are answered on their own response, possibly much later: one task each.
            self._tg.start_soon(self._exchange_task, msg)
            return
        await self._exchange(msg)
        if msg.method == "notifications/initialized":
            self._start_get_stream()

    async def receive(self) -> Message | Fault | Paused:
        item = await self._incoming.receive()
        if isinstance(item, UpstreamError):
            raise item
        return item

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.session_id is not None:
            with anyio.move_on_after(2, shield=True):
                try:
                    resp = await self._client.request("DELETE", self._url, self._headers(None))
                    await resp.read(64 * 1024)
                except (HttpError, BodyTooLarge) as exc:
                    log.debug("DELETE of the upstream session failed: %s", exc)

    # -- first contact (auto-detection) ------------------------------------------------------------

    async def probe(self, msg: Message) -> None:
        """Send the first message in the foreground; raise FallBack if the server wants legacy SSE."""
        self._init_request = msg.obj if msg.method == "initialize" else None
        self._init_id = msg.obj.get("id") if self._init_request else None
        await self._exchange(msg, probing=True)

    # -- exchanges ---------------------------------------------------------------------------------

    def _headers(self, msg: Message | None) -> dict[str, str]:
        headers = {"accept": ACCEPT_BOTH}
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
        version = self.protocol_version
        if msg is not None:
            headers["content-type"] = "application/json"
            method = msg.method
            if method is not None:
                params = msg.params
                # A 2026-07-28 request names its version itself; the header must agree with it.
                version = request_version(params) or version
                # Mirrored for intermediaries (SEP-2243); servers before 2026-07-28 ignore them.
                headers.update(self._mirror.headers(method, params))
        if version is not None:
            headers[PROTOCOL_HEADER] = version
        return headers

    async def _exchange_task(self, msg: Message) -> None:
        modern = msg.kind is Kind.REQUEST and request_version(msg.params) is not None
        try:
            if modern:
                id_ = msg.obj.get("id")
                with anyio.CancelScope() as scope:
                    self._modern_exchanges[id_] = scope
                    try:
                        await self._exchange(msg)
                    finally:
                        self._modern_exchanges.pop(id_, None)
            else:
                await self._exchange(msg)
        except UpstreamError as exc:
            await self._send_in.send(exc)

    async def _exchange(self, msg: Message, *, probing: bool = False, retried: bool = False) -> None:
        ids = tuple(request_ids(msg))
        stale = self.session_id
        try:
            resp = await self._client.request("POST", self._url, self._headers(msg), msg.raw)
        except HttpError as exc:
            raise unreachable(self._url, exc) from exc
        try:
            status = resp.status_code
            if status == 404 and stale is not None and not retried:
                await resp.aclose()
                await self._reinitialize(stale)
                await self._exchange(msg, retried=True)
                return
            fatal = status_error(self._url, resp)
            if fatal is not None:
                raise fatal
            if status >= 400:
                error = await self._error_body(resp, ids)
                if probing and status in (400, 404, 405) and not _is_modern_error(error, status):
                    raise FallBack(status)
                if error is not None:
                    await self._deliver_message(error)
                    return
            if status >= 400 or (ids and status == 202):
                if ids:
                    await self._send_in.send(status_fault(self._url, resp, ids))
                elif status >= 400:
                    log.warning("upstream answered HTTP %s to a %s", status, msg.method or "response")
                return
            sid = resp.headers.get(SESSION_HEADER)
            if sid is not None and msg.method == "initialize":
                self.session_id = sid
            if not ids:
                # Read the (empty) answer to the end, so the connection serves the next request.
                with contextlib.suppress(BodyTooLarge):
                    await resp.read(64 * 1024)
                return
            ctype = resp.headers.get("content-type", "")
            if ctype.startswith("text/event-stream"):
                await self._read_stream(resp, set(ids))
            elif ctype.startswith("application/json"):
                await self._read_json(resp, ids)
            else:
                await self._send_in.send(
                    Fault(f"upstream answered with unexpected content type {ctype!r}", UPSTREAM_ERROR, ids)
                )
        except HttpError as exc:
            raise unreachable(self._url, exc) from exc
        finally:
            await resp.aclose()

    async def _read_json(self, resp: Response, ids: tuple[Any, ...]) -> None:
        try:
            body = await resp.read(self._limit)
        except BodyTooLarge:
            await self._send_in.send(too_large_fault(self._limit, ids))
            return
        await self._deliver(body, ids)

    async def _error_body(self, resp: Response, ids: tuple[Any, ...]) -> Message | None:
        """A JSON-RPC error in an HTTP error response, re-addressed to the request it answers."""
        if not resp.headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            msg = Message.parse(await resp.read(64 * 1024), Direction.SERVER_TO_CLIENT)
        except (BodyTooLarge, ParseFailure):
            return None
        if msg.kind is not Kind.ERROR:
            return None
        if msg.obj.get("id") is None and len(ids) == 1:
            return msg.replace({**msg.obj, "id": ids[0]})
        return msg if msg.obj.get("id") in ids else None

    async def _deliver(self, raw: bytes, ids: tuple[Any, ...] = ()) -> None:
        try:
            msg = Message.parse(raw, Direction.SERVER_TO_CLIENT)
        except ParseFailure as exc:
            await self._send_in.send(Fault(f"upstream sent {exc.reason}", exc.code, ids))
            return
        await self._deliver_message(msg)

    async def _deliver_message(self, msg: Message) -> None:
        for item in msg.obj if msg.kind is Kind.BATCH else (msg.obj,):
            if isinstance(item, dict) and "result" in item:
                id_ = item.get("id")
                if self._init_id is not None and id_ == self._init_id:
                    self._note_version(item)
                if id_ in self._tools_list_ids:
                    self._tools_list_ids.discard(id_)
                    self._mirror.learn_tools(item.get("result"))
        await self._send_in.send(msg)

    def _note_version(self, obj: dict[str, Any]) -> None:
        result = obj.get("result")
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if isinstance(version, str) and version.isascii():
            self.protocol_version = version

    async def _read_stream(self, resp: Response, outstanding: set[Any]) -> None:
        """Read a POST's event stream until every request in it is answered, resuming if it breaks."""
        decoder = SSEDecoder(self._limit)
        resumes = 0
        while True:
            broke = False
            try:
                # Once answered, the stream is read to its end (servers close it after the answer) so the
                # connection can serve the next request; a server that keeps it open gets a short grace.
                with anyio.CancelScope() as scope:
                    async for chunk in resp.aiter_raw():
                        for event in decoder.feed(chunk):
                            await self._on_event(event.event, event.data, event.oversize, outstanding)
                        if not outstanding and scope.deadline == math.inf:
                            scope.deadline = anyio.current_time() + STREAM_GRACE
            except HttpError as exc:
                broke = True
                log.info("upstream response stream broke: %s", exc)
            if not outstanding:
                return
            if not broke and decoder.last_event_id is not None:
                await self._send_in.send(Paused(tuple(outstanding)))
            await resp.aclose()
            if decoder.last_event_id is None or resumes >= MAX_RESUMES:
                await self._send_in.send(Fault(
                    "upstream closed the response stream before answering", UPSTREAM_ERROR, tuple(outstanding)))
                return
            resumes += 1
            await anyio.sleep((decoder.retry_ms or 0) / 1000)
            resumed = await self._resume(decoder.last_event_id)
            if resumed is None:
                await self._send_in.send(Fault(
                    "upstream response stream broke and could not be resumed", UPSTREAM_ERROR, tuple(outstanding)))
                return
            resp = resumed

    async def _on_event(self, event: str, data: bytes, oversize: bool, outstanding: set[Any]) -> None:
        if event != "message":
            return
        if oversize:
            # We cannot know which request it answered; the ones still waiting are told.
            await self._send_in.send(too_large_fault(self._limit, tuple(outstanding)))
            outstanding.clear()
            return
        try:
            msg = Message.parse(data, Direction.SERVER_TO_CLIENT)
        except ParseFailure as exc:
            await self._send_in.send(Fault(f"upstream sent {exc.reason}", exc.code))
            return
        for item in msg.obj if msg.kind is Kind.BATCH else (msg.obj,):
            if isinstance(item, dict) and "method" not in item:
                outstanding.discard(item.get("id"))
        await self._deliver_message(msg)

    async def _resume(self, last_event_id: str) -> Response | None:
        headers = self._headers(None)
        headers["accept"] = "text/event-stream"
        headers["last-event-id"] = last_event_id
        try:
            resp = await self._client.request("GET", self._url, headers)
        except HttpError as exc:
            log.info("resuming the upstream stream failed: %s", exc)
            return None
        if resp.status_code != 200:
            await resp.aclose()
            return None
        return resp

    # -- session upkeep ----------------------------------------------------------------------------

    async def _reinitialize(self, stale: str) -> None:
        """The server forgot our session (restart, expiry): replay the client's initialize, transparently."""
        async with self._reinit_lock:
            if self.session_id != stale:
                return  # another request already did it
            if self._init_request is None:
                raise UpstreamError(f"upstream {self._url} lost the session before it was initialised")
            self._reinit_count += 1
            log.warning("upstream session expired (HTTP 404); re-initialising (%d)", self._reinit_count)
            self.session_id = None
            replay = {**self._init_request, "id": f"relay-reinit-{self._reinit_count}"}
            try:
                headers = {**self._headers(None), "content-type": "application/json"}
                resp = await self._client.request("POST", self._url, headers, dumps(replay).encode())
                body = await resp.read(self._limit)
                sid = resp.headers.get(SESSION_HEADER)
                if resp.status_code != 200:
                    raise UpstreamError(
                        f"upstream {self._url} lost the session and refused to start a new one (HTTP {resp.status_code})")
                self.session_id = sid
                if resp.headers.get("content-type", "").startswith("text/event-stream"):
                    decoder = SSEDecoder(self._limit)
                    body = next((e.data for e in decoder.feed(body + b"\n\n") if e.event == "message"), b"")
                try:
                    reply = Message.parse(body, Direction.SERVER_TO_CLIENT)
                except ParseFailure as exc:
                    raise UpstreamError(f"upstream {self._url} answered the re-initialisation with {exc.reason}") from None
                if reply.kind is not Kind.RESPONSE:
                    raise UpstreamError(f"upstream {self._url} refused the re-initialisation: {reply.obj.get('error')}")
                self._note_version(reply.obj)
                note = Message.build({"jsonrpc": "2.0", "method": "notifications/initialized"}, Direction.CLIENT_TO_SERVER)
                resp = await self._client.request("POST", self._url, self._headers(note), note.raw)
                await resp.read(64 * 1024)
            except (HttpError, BodyTooLarge) as exc:
                raise unreachable(self._url, exc) from exc
            if self._get_stream_started:
                self._get_stream_started = False
                self._start_get_stream()

    def _start_get_stream(self) -> None:
        if self._get_stream_started or self.session_id is None:
            return
        self._get_stream_started = True
        self._tg.start_soon(self._get_stream, self.session_id)

    async def _get_stream(self, session_id: str) -> None:
        """The optional stream of server-initiated messages; absent (405) is fine."""
        decoder = SSEDecoder(self._limit)
        failures = 0
        while not self._closed and self.session_id == session_id:
            headers = self._headers(None)
            headers["accept"] = "text/event-stream"
            if decoder.last_event_id is not None:
                headers["last-event-id"] = decoder.last_event_id
            try:
                resp = await self._client.request("GET", self._url, headers)
                try:
                    if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                        log.debug("upstream offers no GET stream (HTTP %s)", resp.status_code)
                        return
                    failures = 0
                    async for chunk in resp.aiter_raw():
                        for event in decoder.feed(chunk):
                            if event.oversize:
                                log.warning("dropped a server message over the size limit")
                            elif event.event == "message":
                                await self._deliver(event.data)
                finally:
                    await resp.aclose()
            except HttpError as exc:
                failures += 1
                log.info("upstream GET stream broke: %s", exc)
                if failures > MAX_RESUMES:
                    return
            await anyio.sleep((decoder.retry_ms if decoder.retry_ms is not None else 1000) / 1000)


def _is_modern_error(error: Message | None, status: int) -> bool:
    if error is None:
        return False
    code = (error.obj.get("error") or {}).get("code")
    return code in MODERN_ERRORS or (status == 404 and code == -32601)
