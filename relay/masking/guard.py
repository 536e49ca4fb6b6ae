"""The masking guard: no card data reaches the agent, and none reaches a transcript.

Everything the server sends is masked before the client sees it. What the client sends goes to the server as
sent by default (an agent may legitimately look an order up by card number), or masked, or is blocked; in
every case the transcript stores the masked form.
"""

from __future__ import annotations

import logging
from typing import Literal

from relay.jsonrpc import Direction, Message
from relay.masking.mask import Masker, MaskPolicy
from relay.pipeline import Context, Rejected

log = logging.getLogger("relay.masking")

ClientMode = Literal["pass", "mask", "block"]
CLIENT_MODES: tuple[ClientMode, ...] = ("pass", "mask", "block")


class MaskingGuard:
    name = "masking"

    def __init__(self, policy: MaskPolicy, client: ClientMode = "pass") -> None:
        self._masker = Masker(policy)
        self._client = client

    async def intercept(self, msg: Message, ctx: Context) -> Message:
        # Any exception here withholds the message (the pipeline fails closed).
        masked, actions = self._masker.message(msg)
        if masked is msg:
            return msg
        ctx.notes.append({"guard": "masking", "actions": actions})
        if msg.direction is Direction.SERVER_TO_CLIENT or self._client == "mask":
            return masked
        if self._client == "block":
            raise Rejected("the request carries card data, which this relay's policy does not let through")
        ctx.record = masked
        return msg

    async def aclose(self, reason: str = "client_closed") -> None:
        pass
