"""The approval broker of one relay process: pending requests, and the one place decisions are checked.

A decision releases a call only if it names that request's id and argument digest, arrives before the
expiry, and is the first one (a replayed decision is refused). Channels offer requests to people and bring
their decisions here; none of them can release a call by itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import anyio

from relay.approval.request import ApprovalRequest, Verdict

log = logging.getLogger("relay.approval")


class DecisionRefused(Exception):
    """A decision that does not release anything; the message says why (shown to whoever sent it)."""


@dataclass
class _Pending:
    request: ApprovalRequest
    approvals_needed: int
    approvers: set[str] = field(default_factory=set)
    verdict: Verdict | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class Broker:
    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._decided: set[str] = set()

    def pending(self) -> list[ApprovalRequest]:
        return [p.request for p in self._pending.values() if p.verdict is None]

    async def wait(self, request: ApprovalRequest, approvers: int) -> Verdict:
        """Until the request is decided or expires (then: not approved, approver None)."""
        entry = _Pending(request, approvers)
        self._pending[request.id] = entry
        try:
            with anyio.move_on_after(max(0.0, request.expires_at - time.time())):
                await entry.done.wait()
            return entry.verdict or Verdict(False, None, None, None)
        finally:
            self._pending.pop(request.id, None)
            self._decided.add(request.id)

    def withdraw(self, request_id: str, why: str) -> None:
        entry = self._pending.get(request_id)
        if entry is not None and entry.verdict is None:
            entry.verdict = Verdict(False, None, why, None)
            entry.done.set()

    def decide(self, request_id: str, digest: str, *, approve: bool, approver: str, reason: str | None,
               channel: str) -> Verdict | None:
        """Apply one person's decision. Returns the verdict once the request is decided, None while more
        approvers are needed; raises DecisionRefused for a decision that cannot count."""
        entry = self._pending.get(request_id)
        if entry is None or entry.verdict is not None:
            if request_id in self._decided:
                raise DecisionRefused(f"request {request_id} is already decided or withdrawn")
            raise DecisionRefused(f"no pending request {request_id}")
        request = entry.request
        if digest != request.digest:
            raise DecisionRefused(f"the decision names other arguments than request {request_id} (digest mismatch)")
        if time.time() >= request.expires_at:
            raise DecisionRefused(f"request {request_id} has expired")
        if approver in entry.approvers:
            raise DecisionRefused(f"{approver} has already approved request {request_id}")
        if not approve:
            entry.verdict = Verdict(False, approver, reason, channel)
        else:
            entry.approvers.add(approver)
            if len(entry.approvers) < entry.approvals_needed:
                return None
            entry.verdict = Verdict(True, ", ".join(sorted(entry.approvers)), reason, channel)
        entry.done.set()
        log.info("approval %s: %s by %s via %s", request_id, "approved" if approve else "denied", approver, channel)
        return entry.verdict
