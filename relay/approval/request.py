"""An approval request, bound to exactly one call: session, server, tool, a digest of its arguments, the
requester, a nonce and an expiry. A decision names the digest it approves and releases that call once."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any


def arguments_digest(arguments: Any) -> str:
    """SHA-256 of the canonical JSON of the arguments (sorted keys, no spaces, UTF-8), hex."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    session: str
    server: str
    tool: str
    digest: str
    requester: dict[str, Any]  # who the agent acts for: the identity, or the OS user
    arguments: Any  # masked: what an approver sees never holds card data
    rule: str  # which policy rule asked for it
    reason: str | None
    expires_at: float  # epoch seconds
    approvers: int = 1  # distinct people whose approval releases the call
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    created_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        """What channels show an approver."""
        return {"id": self.id, "session": self.session, "server": self.server, "tool": self.tool,
                "digest": self.digest, "requester": self.requester, "arguments": self.arguments, "rule": self.rule,
                "reason": self.reason, "approvers": self.approvers, "expires_at": self.expires_at,
                "created_at": self.created_at, "nonce": self.nonce}


@dataclass(frozen=True)
class Verdict:
    approved: bool
    approver: str | None  # None: nobody decided (timeout, channel failure, withdrawn)
    reason: str | None
    channel: str | None
    decided_at: float = field(default_factory=time.time)
