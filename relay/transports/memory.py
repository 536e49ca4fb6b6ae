"""Paired in-memory transports, for tests of the pipeline and session without processes or sockets."""

from __future__ import annotations

import math

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relay.jsonrpc import Direction, Message, ParseFailure
from relay.transports import Fault


class MemoryTransport:
    """One end of an in-memory pipe carrying raw message bytes (so tests can send malformed ones)."""

    def __init__(self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes],
                 incoming: Direction) -> None:
        self._send = send
        self._receive = receive
        self._incoming = incoming

    async def send(self, msg: Message) -> None:
        await self._send.send(msg.raw)

    async def send_raw(self, raw: bytes) -> None:
        await self._send.send(raw)

    async def receive(self) -> Message | Fault:
        raw = await self._receive.receive()
        try:
            return Message.parse(raw, self._incoming)
        except ParseFailure as exc:
            return Fault(exc.reason, exc.code)

    async def receive_raw(self) -> bytes:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await self._send.aclose()


def memory_pair(relay_receives: Direction) -> tuple[MemoryTransport, MemoryTransport]:
    """(relay_end, peer_end): the relay holds the first, a test plays the peer with the second.

    `relay_receives` is the direction of what arrives at the relay's end: CLIENT_TO_SERVER when the peer
    plays the MCP client, SERVER_TO_CLIENT when it plays the server.
    """
    a_send, a_recv = anyio.create_memory_object_stream[bytes](math.inf)
    b_send, b_recv = anyio.create_memory_object_stream[bytes](math.inf)
    return (MemoryTransport(a_send, b_recv, relay_receives),
            MemoryTransport(b_send, a_recv, relay_receives.reverse))
