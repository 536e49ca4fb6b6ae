"""The elicitation approval channel: the MCP client asks its user (`elicitation/create`, form mode).

The person answering is the one the agent acts for, so this is self-approval: a rule must name the channel (it is
never a default), and the transcript marks such decisions `self_approval: true`. The question shows the masked
arguments; the answer counts for the request it was asked about (its digest and nonce), once. A client that did
not declare elicitation, refuses the question or dismisses it makes the channel unavailable; an answer relay
cannot read denies the call (fail closed).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from relay.approval.broker import Broker, DecisionRefused
from relay.approval.channels import ChannelUnavailable, ClientLink
from relay.approval.request import ApprovalRequest
from relay.pipeline import PeerRefused

log = logging.getLogger("relay.approval")

MAX_ARGUMENTS = 2000  # characters of the masked arguments shown in the question
MAX_REASON = 500

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve this call",
                    "description": "Run the tool with exactly these arguments", "default": False},
        "reason": {"type": "string", "title": "Reason (optional)", "maxLength": MAX_REASON},
    },
    "required": ["approve"],
}


def supports_form(capabilities: Any) -> bool:
    """Whether the client declared form elicitation (`{}` meant form before modes existed)."""
    caps = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
    if not isinstance(caps, dict):
        return False
    return not caps or "form" in caps


def requester_name(requester: dict[str, Any]) -> str:
    for key in ("email", "name", "subject", "user"):
        value = requester.get(key)
        if isinstance(value, str) and value:
            return value
    return "the requester"


def question(request: ApprovalRequest) -> str:
    arguments = json.dumps(request.arguments, ensure_ascii=False, indent=1)
    if len(arguments) > MAX_ARGUMENTS:
        arguments = arguments[:MAX_ARGUMENTS] + " ..."
    left = max(0, round(request.expires_at - time.time()))
    why = f" ({request.reason})" if request.reason else ""
    return (f"relay: the agent wants to call {request.tool} on {request.server}. Policy {request.rule} needs a "
            f"person's approval{why}. Arguments (card data masked):\n{arguments}\n\n"
            f"You are approving your own agent's call: relay records it as a self-approval. "
            f"Request {request.id}, {left}s left.")


class ElicitationChannel:
    name = "elicitation"

    async def offer(self, request: ApprovalRequest, broker: Broker, client: ClientLink) -> None:
        if client.ask is None or not supports_form(client.capabilities):
            raise ChannelUnavailable("the MCP client does not support elicitation")
        try:
            # No "mode": form is the default, and clients before 2025-11-25 do not know the member.
            answer = await client.ask("elicitation/create", {"message": question(request), "requestedSchema": SCHEMA})
        except PeerRefused as exc:
            raise ChannelUnavailable(str(exc)) from None
        action = answer.get("action")
        content = answer.get("content")
        if action == "cancel":
            raise ChannelUnavailable("the question was dismissed in the MCP client")
        if action not in ("accept", "decline") or (action == "accept" and not isinstance(content, dict)):
            broker.fail(request.id, "the MCP client sent an elicitation answer relay cannot read", self.name)
            return
        approve = action == "accept" and isinstance(content, dict) and content.get("approve") is True
        reason = content.get("reason") if isinstance(content, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            reason = None if approve or action == "accept" else "declined in the MCP client"
        else:
            reason = "".join(c if c.isprintable() else " " for c in reason.strip())[:MAX_REASON]
        name = requester_name(request.requester)
        try:
            broker.decide(request.id, request.digest, approve=approve, approver=name, reason=reason,
                          channel=self.name, nonce=request.nonce, identity=request.requester, self_approval=True)
        except DecisionRefused:
            return  # expired meanwhile, or this person approved already elsewhere: recorded by the broker

    async def aclose(self) -> None:
        return None
