"""The legacy HTTP+SSE transport (revision 2024-11-05): one GET event stream, messages POSTed to its endpoint."""

from __future__ import annotations

import logging
import math
from urllib.parse import urljoin, urlsplit

import anyio
from anyio.abc import TaskGroup

from relay.errors import UpstreamError
from relay.jsonrpc import Direction, Message, ParseFailure, request_ids
from relay.transports import Fault
from relay.transports.h1 import BodyTooLarge, HttpClient, HttpError, Response
from relay.transports.http import status_error, status_fault, unreachable
from relay.transports.sse_codec import SSEDecoder

log = logging.getLogger("relay.sse")

ENDPOINT_TIMEOUT = 10.0


class SseTransport:
    def __init__(self, client: HttpClient, url: str, tg: TaskGroup, limit: int) -> None:
        self._client = client
        self._url = url
        self._tg = tg
        self._limit = limit
        self._send_in, self._incoming = anyio.create_memory_object_stream[Message | Fault | UpstreamError](math.inf)
        self._endpoint: str | None = None
        self._ready = anyio.Event()

    async def connect(self) -> None:
        """Open the event stream and wait for the server to name its message endpoint."""
        self._tg.start_soon(self._stream)
        with anyio.move_on_after(ENDPOINT_TIMEOUT):
            await self._ready.wait()
        if self._endpoint is None:
            # The stream task may have queued the real reason.
            try:
                item = self._incoming.receive_nowait()
            except anyio.WouldBlock:
                item = None
            if isinstance(item, UpstreamError):
                raise item
            raise UpstreamError(f"upstream {self._url} sent no 'endpoint' event within {ENDPOINT_TIMEOUT:.0f}s",
                                hint="is this an MCP SSE endpoint?")

    async def _stream(self) -> None:
        try:
            resp: Response = await self._client.request("GET", self._url, {"accept": "text/event-stream"})
        except HttpError as exc:
            await self._send_in.send(unreachable(self._url, exc))
            self._ready.set()
            return
        try:
            fatal = status_error(self._url, resp)
            if fatal is None and resp.status_code != 200:
                fatal = UpstreamError(f"upstream {self._url} answered HTTP {resp.status_code} to the event-stream GET")
            if fatal is not None:
                await self._send_in.send(fatal)
                self._ready.set()
                return
            decoder = SSEDecoder(self._limit)
            async for chunk in resp.aiter_raw():
                for event in decoder.feed(chunk):
                    await self._on_event(event.event, event.data, event.oversize)
            await self._send_in.send(UpstreamError(f"upstream {self._url} closed its event stream"))
        except HttpError as exc:
            await self._send_in.send(UpstreamError(f"upstream {self._url} event stream broke: {exc}"))
        finally:
            self._ready.set()
            await resp.aclose()

    async def _on_event(self, event: str, data: bytes, oversize: bool) -> None:
        if event == "endpoint":
            endpoint = urljoin(self._url, data.decode("utf-8", "replace").strip())
            if urlsplit(endpoint)[:2] != urlsplit(self._url)[:2]:
                # The spec's origin rule: never POST the session's messages to another host.
                await self._send_in.send(UpstreamError(f"upstream {self._url} named an endpoint on another origin"))
                return
            self._endpoint = endpoint
            self._ready.set()
            return
        if event != "message":
            return
        if oversize:
            await self._send_in.send(Fault(f"upstream message larger than the limit of {self._limit} bytes; dropped", -32001))
            return
        try:
            await self._send_in.send(Message.parse(data, Direction.SERVER_TO_CLIENT))
        except ParseFailure as exc:
            await self._send_in.send(Fault(f"upstream sent {exc.reason}", exc.code))

    async def send(self, msg: Message) -> None:
        assert self._endpoint is not None
        ids = tuple(request_ids(msg))
        try:
            resp = await self._client.request("POST", self._endpoint, {"content-type": "application/json"}, msg.raw)
            await resp.read(64 * 1024)
        except BodyTooLarge:
            pass
        except HttpError as exc:
            raise unreachable(self._url, exc) from exc
        fatal = status_error(self._url, resp)
        if fatal is not None:
            raise fatal
        if resp.status_code >= 400:
            if ids:
                await self._send_in.send(status_fault(self._endpoint, resp, ids))
            else:
                log.warning("upstream answered HTTP %s to a %s", resp.status_code, msg.method or "response")

    async def receive(self) -> Message | Fault:
        item = await self._incoming.receive()
        if isinstance(item, UpstreamError):
            raise item
        return item

    async def aclose(self) -> None:
        pass
