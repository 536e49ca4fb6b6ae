"""What an active approval channel is to the guard: something that offers a request to people until it is decided
(bringing decisions to the broker) or cancelled, and says so when it cannot reach them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from relay.approval.broker import Broker
    from relay.approval.request import ApprovalRequest
    from relay.pipeline import Ask


@dataclass(frozen=True)
class ClientLink:
    """The MCP client the held call came from: what it declared it can do in `initialize`, and a way to send it a
    request of relay's own (None where it cannot be asked, e.g. `relay call`)."""

    capabilities: Mapping[str, Any] = field(default_factory=dict)
    ask: Ask | None = None


class ChannelUnavailable(Exception):
    """The channel cannot offer the request (service unreachable, refused relay's credentials, lost the request).

    The message says why in words fit for the agent and the transcript: it never holds a token."""


class Channel(Protocol):
    name: str

    async def offer(self, request: ApprovalRequest, broker: Broker, client: ClientLink) -> None:
        """Offer the request until it is decided or this task is cancelled; raise ChannelUnavailable when the
        people behind the channel cannot be reached. Decisions go to `broker.decide`, never straight to the call.
        `client` is the MCP client that sent the call."""

    async def aclose(self) -> None:
        """Release what the channel holds for the session (connections)."""
