"""Opening the upstream side: a child process, Streamable HTTP, legacy SSE, or auto-detection between the two."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from anyio.abc import TaskGroup

from relay.config import ServerConfig
from relay.jsonrpc import Message
from relay.transports import Fault, Paused, Transport
from relay.transports.h1 import HttpClient
from relay.transports.http import Credentials, make_client
from relay.transports.sse import SseTransport
from relay.transports.stdio import open_child
from relay.transports.streamable_http import FallBack, StreamableHttpTransport

log = logging.getLogger("relay.upstream")


class AutoHttpTransport:
    """Streamable HTTP first; on 400/404/405 to the first POST, the legacy SSE transport (as the spec says)."""

    def __init__(self, client: HttpClient, url: str, tg: TaskGroup, limit: int) -> None:
        self._client, self._url, self._tg, self._limit = client, url, tg, limit
        self._chosen: StreamableHttpTransport | SseTransport | None = None
        self._ready = anyio.Event()
        self.kind = "auto"

    async def send(self, msg: Message) -> None:
        if self._chosen is not None:
            await self._chosen.send(msg)
            return
        streamable = StreamableHttpTransport(self._client, self._url, self._tg, self._limit)
        try:
            await streamable.probe(msg)
            self._chosen, self.kind = streamable, "streamable-http"
        except FallBack as fb:
            log.info("upstream answered HTTP %s to a Streamable HTTP POST; trying the legacy SSE transport", fb.status)
            sse = SseTransport(self._client, self._url, self._tg, self._limit)
            await sse.connect()
            self._chosen, self.kind = sse, "sse"
            await sse.send(msg)
        finally:
            self._ready.set()

    async def receive(self) -> Message | Fault | Paused:
        await self._ready.wait()
        if self._chosen is None:
            await anyio.sleep_forever()  # the failure travels through send()
        assert self._chosen is not None
        return await self._chosen.receive()

    async def aclose(self) -> None:
        if self._chosen is not None:
            await self._chosen.aclose()


@contextlib.asynccontextmanager
async def open_upstream(server: ServerConfig, *, limit: int,
                        credentials: Credentials | None = None) -> AsyncIterator[Transport]:
    if server.command:
        async with open_child(server.command, label=server.name, limit=limit, env=server.env, cwd=server.cwd) as child:
            yield child
        return
    assert server.url is not None
    async with make_client(server.headers, credentials) as client, anyio.create_task_group() as tg:
        transport: StreamableHttpTransport | SseTransport | AutoHttpTransport
        if server.transport == "sse":
            transport = SseTransport(client, server.url, tg, limit)
            await transport.connect()
        elif server.transport == "streamable-http":
            transport = StreamableHttpTransport(client, server.url, tg, limit)
        else:
            transport = AutoHttpTransport(client, server.url, tg, limit)
        try:
            yield transport
        finally:
            await transport.aclose()
            tg.cancel_scope.cancel()
