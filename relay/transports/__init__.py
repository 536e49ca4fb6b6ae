"""The transport seam: every wire (stdio, Streamable HTTP, SSE, memory) yields the same small interface.

Nothing above this package knows about SSE framing, session headers or child processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from relay.jsonrpc import Message


@dataclass(frozen=True, slots=True)
class Fault:
    """Something arrived that is not a message, or a single exchange failed.

    `code` is the JSON-RPC error code to report; `request_ids` names the requests the fault answers
    (empty when it cannot be tied to one, e.g. a garbage line on stdio).
    """

    reason: str
    code: int
    request_ids: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Paused:
    """The server closed the stream of these requests on purpose, to be polled (SEP-1699); answers follow.

    Relay resumes upstream by itself; a client transport that can mirror the pause (--listen) does.
    """

    request_ids: tuple[Any, ...]


@runtime_checkable
class Pausable(Protocol):
    async def pause(self, request_ids: tuple[Any, ...]) -> None: ...


class Transport(Protocol):
    """One open connection to a peer, carrying JSON-RPC messages.

    `receive` raises `anyio.EndOfStream` when the peer closed cleanly and `relay.errors.UpstreamError`
    when an upstream became unusable; parse problems come back as `Fault` values, not exceptions.
    """

    async def send(self, msg: Message) -> None: ...

    async def receive(self) -> Message | Fault | Paused: ...

    async def aclose(self) -> None: ...
