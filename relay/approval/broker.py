"""The approval broker of one relay process: pending requests, and the one place decisions are checked.

A decision releases a call only if it names that request's id and argument digest (and its nonce, when the
channel carries one), arrives before the expiry, is the first one (a replayed decision is refused), and, where
the channel knows who decided, does not come from the requester. Channels offer requests to people and bring
their decisions here; none of them can release a call by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from relay.approval.request import ApprovalRequest, Verdict

log = logging.getLogger("relay.approval")

# (approver, channel, why): a decision that was refused, for the transcript
OnRefused = Callable[[str, str, str], None]


class DecisionRefused(Exception):
    """A decision that does not release anything; the message says why (shown to whoever sent it)."""


@dataclass
class _Pending:
    request: ApprovalRequest
    approvals_needed: int
    on_refused: OnRefused | None = None
    channels: tuple[str, ...] | None = None  # where it is offered; None: anywhere
    approvers: list[tuple[str, Mapping[str, Any] | None]] = field(default_factory=list)  # who approved so far
    verdict: Verdict | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class Broker:
    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._decided: set[str] = set()

    def pending(self, channel: str | None = None) -> list[ApprovalRequest]:
        """The undecided requests; with a channel, those offered on it."""
        return [p.request for p in self._pending.values()
                if p.verdict is None and (channel is None or p.channels is None or channel in p.channels)]

    def still_needed(self, request_id: str) -> int:
        """How many more approvals the pending request needs (0 when it is not pending)."""
        entry = self._pending.get(request_id)
        if entry is None or entry.verdict is not None:
            return 0
        return max(0, entry.approvals_needed - len(entry.approvers))

    def is_pending(self, request_id: str) -> bool:
        entry = self._pending.get(request_id)
        return entry is not None and entry.verdict is None

    async def wait(self, request: ApprovalRequest, approvers: int, on_refused: OnRefused | None = None,
                   channels: tuple[str, ...] | None = None) -> Verdict:
        """Until the request is decided or expires (then: not approved, approver None). Only decisions that come
        through one of `channels` count (None: any)."""
        entry = _Pending(request, approvers, on_refused, channels)
        self._pending[request.id] = entry
        try:
            with anyio.move_on_after(max(0.0, request.expires_at - time.time())):
                await entry.done.wait()
            return entry.verdict or Verdict(False, None, None, None)
        finally:
            self._pending.pop(request.id, None)
            self._decided.add(request.id)

    def withdraw(self, request_id: str, why: str) -> None:
        """Nobody decided and the call does not run: the client cancelled, the session ended."""
        self._end(request_id, Verdict(False, None, why, None))

    def fail(self, request_id: str, why: str, channel: str) -> None:
        """Denied because a channel failed in a way that must not be waited out (fail closed): no reachable
        channel is left, or a channel brought a decision relay cannot read."""
        self._end(request_id, Verdict(False, None, why, channel))

    def _end(self, request_id: str, verdict: Verdict) -> None:
        entry = self._pending.get(request_id)
        if entry is not None and entry.verdict is None:
            entry.verdict = verdict
            entry.done.set()

    def decide(self, request_id: str, digest: str, *, approve: bool, approver: str, reason: str | None,
               channel: str, nonce: str | None = None, identity: Mapping[str, Any] | None = None,
               self_approval: bool = False) -> Verdict | None:
        """Apply one person's decision. Returns the verdict once the request is decided, None while more
        approvers are needed; raises DecisionRefused for a decision that cannot count. `nonce` and `identity`
        (who decided: subject, email, name, or the OS user) are checked when the channel has them.
        `self_approval`: the channel is one where the requester answers for their own agent (local, tty,
        elicitation), so an approver who is the requester is not refused; they still count once."""
        entry = self.check(request_id, digest, approve=approve, approver=approver, channel=channel, nonce=nonce,
                           identity=identity, self_approval=self_approval)
        if not approve:
            entry.verdict = Verdict(False, approver, reason, channel)
        else:
            entry.approvers.append((approver, identity))
            if len(entry.approvers) < entry.approvals_needed:
                return None
            names = ", ".join(sorted(name for name, _ in entry.approvers))
            entry.verdict = Verdict(True, names, reason, channel)
        entry.done.set()
        log.info("approval %s: %s by %s via %s", request_id, "approved" if approve else "denied", approver, channel)
        return entry.verdict

    def check(self, request_id: str, digest: str, *, approve: bool, approver: str, channel: str,
              nonce: str | None = None, identity: Mapping[str, Any] | None = None,
              self_approval: bool = False) -> _Pending:
        """What `decide` checks, without applying anything: for channels that bring several approvals at once."""
        entry = self._pending.get(request_id)
        if entry is None or entry.verdict is not None:
            if request_id in self._decided:
                raise DecisionRefused(f"request {request_id} is already decided or withdrawn")
            raise DecisionRefused(f"no pending request {request_id}")
        request = entry.request
        if entry.channels is not None and channel not in entry.channels:
            raise self.refuse(request_id, approver, channel, f"request {request_id} is not offered on the {channel} "
                                                             f"channel (only {', '.join(entry.channels)})")
        if digest != request.digest:
            raise self.refuse(request_id, approver, channel,
                              f"the decision names other arguments than request {request_id} (digest mismatch)")
        if nonce is not None and nonce != request.nonce:
            raise self.refuse(request_id, approver, channel,
                              f"the decision names another instance of request {request_id} (nonce mismatch)")
        if time.time() >= request.expires_at:
            raise self.refuse(request_id, approver, channel, f"request {request_id} has expired")
        if approve and not self_approval and identity is not None and same_person(request.requester, identity):
            raise self.refuse(request_id, approver, channel,
                              f"{approver} asked for request {request_id} and cannot approve it (no self-approval)")
        # Several approvals must come from several people, whichever channels they use.
        for name, who in entry.approvers:
            if name == approver or (identity is not None and who is not None and same_person(who, identity)):
                raise self.refuse(request_id, approver, channel,
                                  f"{approver} has already approved request {request_id}" +
                                  ("" if name == approver else f" (as {name})"))
        return entry

    def refuse(self, request_id: str, approver: str, channel: str, why: str) -> DecisionRefused:
        """Log and record a refused decision for a pending request; the error to raise."""
        log.warning("approval %s: decision by %s via %s refused: %s", request_id, approver, channel, why)
        entry = self._pending.get(request_id)
        if entry is not None and entry.on_refused is not None:
            entry.on_refused(approver, channel, why)
        return DecisionRefused(why)


def same_person(requester: Mapping[str, Any], approver: Mapping[str, Any]) -> bool:
    """Whether the approver is (or cannot be told apart from) the requester. Subjects and e-mail addresses
    compare first; when the two do not both carry a subject, any name they share counts (a requester without an
    identity is {"user": OS user}): a wrongly refused approval waits for another person, a wrong one runs a call."""
    def claim(who: Mapping[str, Any], key: str) -> str | None:
        value = who.get(key)
        return value.strip().casefold() if isinstance(value, str) and value.strip() else None

    for key in ("subject", "email"):
        mine, theirs = claim(requester, key), claim(approver, key)
        if mine is not None and mine == theirs:
            return True
    if claim(requester, "subject") is not None and claim(approver, "subject") is not None:
        return False
    names = ("subject", "email", "name", "user")
    mine_all = {v for k in names if (v := claim(requester, k)) is not None}
    return any(v in mine_all for k in names if (v := claim(approver, k)) is not None)
