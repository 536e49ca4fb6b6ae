"""The broker's checks on decisions that carry more than a digest: the nonce, and who decided (no self-approval),
with refusals reported for the transcript; and denial when a channel fails."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from relay.approval.broker import Broker, DecisionRefused, same_person
from relay.approval.request import ApprovalRequest, Verdict

ALICE = {"issuer": "https://login.example", "subject": "a-1", "name": "Alice", "email": "alice@example.com"}


@pytest.mark.parametrize(("requester", "approver", "same"), [
    (ALICE, {"subject": "a-1"}, True),
    (ALICE, {"subject": "b-2", "email": "ALICE@example.com"}, True),  # another subject, the same mailbox
    (ALICE, {"subject": "b-2", "name": "Alice"}, False),  # two subjects tell two Alices apart
    (ALICE, {"name": "Alice"}, True),  # without a second subject, a shared name counts
    (ALICE, {"subject": "b-2", "name": "Bob", "email": "bob@example.com"}, False),
    ({"user": "alice"}, {"subject": "alice"}, True),  # an OS user against a service's account name
    ({"user": "alice"}, {"name": "Alice"}, True),
    ({"user": "alice"}, {"subject": "bob", "email": "bob@example.com"}, False),
    ({"user": "alice"}, {"email": "  "}, False),
])
def test_same_person(requester: dict[str, Any], approver: dict[str, Any], same: bool) -> None:
    assert same_person(requester, approver) is same


def request(**extra: Any) -> ApprovalRequest:
    return ApprovalRequest(id="r-1", session="s", server="payments", tool="refund_payment", digest="d" * 64,
                           requester={"user": "alice"}, arguments={}, rule="rule 1", reason=None,
                           expires_at=time.time() + 30, **extra)


async def decide_while_waiting(req: ApprovalRequest, *decisions: dict[str, Any]) -> tuple[Verdict, list[str],
                                                                                         list[tuple[str, str]]]:
    """Apply decisions while a call waits: its verdict, the refusals' messages, and who the broker reported."""
    broker = Broker()
    errors: list[str] = []
    reported: list[tuple[str, str]] = []
    verdicts: list[Verdict] = []

    async def waiter() -> None:
        verdicts.append(await broker.wait(req, req.approvers, lambda who, channel, _why: reported.append((who, channel))))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.lowlevel.checkpoint()
        for d in decisions:
            try:
                broker.decide(req.id, req.digest, channel="remote", **d)
            except DecisionRefused as exc:
                errors.append(str(exc))
    return verdicts[0], errors, reported


def test_nonce_and_self_approval_are_refused_and_reported() -> None:
    req = request()
    verdict, errors, reported = anyio.run(
        decide_while_waiting, req,
        {"approve": True, "approver": "bob", "reason": None, "nonce": "other"},
        {"approve": True, "approver": "alice", "reason": None, "identity": {"subject": "alice"}},
        {"approve": True, "approver": "bob", "reason": "ok", "nonce": req.nonce, "identity": {"subject": "bob"}})
    assert verdict.approved and verdict.approver == "bob" and verdict.channel == "remote"
    assert "nonce mismatch" in errors[0] and "no self-approval" in errors[1]
    assert reported == [("bob", "remote"), ("alice", "remote")]


def test_only_the_channels_a_request_is_offered_on_decide_it() -> None:
    async def main() -> tuple[list[str], list[str]]:
        broker, req = Broker(), request()
        async with anyio.create_task_group() as tg:
            tg.start_soon(broker.wait, req, 1, None, ("remote",))
            await anyio.lowlevel.checkpoint()
            listed = [r.id for r in broker.pending("local")]
            with pytest.raises(DecisionRefused, match="not offered on the local channel"):
                broker.decide(req.id, req.digest, approve=True, approver="alice", reason=None, channel="local")
            broker.decide(req.id, req.digest, approve=True, approver="bob", reason=None, channel="remote")
        return listed, [r.id for r in broker.pending("remote")]

    assert anyio.run(main) == ([], [])


def test_the_requester_may_deny_their_own_request() -> None:
    verdict, errors, _ = anyio.run(
        decide_while_waiting, request(),
        {"approve": False, "approver": "alice", "reason": "oops", "identity": {"subject": "alice"}})
    assert (verdict.approved, verdict.approver, verdict.reason, errors) == (False, "alice", "oops", [])


def test_a_failed_channel_denies_without_an_approver() -> None:
    async def main() -> Verdict:
        broker = Broker()
        req = request()

        async def fail_soon() -> None:
            await anyio.sleep(0.01)
            broker.fail(req.id, "the approval service is unreachable", "remote")

        async with anyio.create_task_group() as tg:
            tg.start_soon(fail_soon)
            verdict = await broker.wait(req, 1)
        return verdict

    verdict = anyio.run(main)
    assert (verdict.approved, verdict.approver, verdict.channel) == (False, None, "remote")
    assert verdict.reason == "the approval service is unreachable"


def test_several_approvers_are_several_people_across_channels() -> None:
    """approvers: 2 is met by two people whichever channels they use, never by one person on two channels."""
    async def main() -> tuple[Verdict, list[int], list[str]]:
        broker, req = Broker(), request(approvers=2)
        needed: list[int] = []
        errors: list[str] = []
        verdicts: list[Verdict] = []

        async def waiter() -> None:
            verdicts.append(await broker.wait(req, 2, None, ("local", "remote")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.lowlevel.checkpoint()
            needed.append(broker.still_needed(req.id))
            assert broker.decide(req.id, req.digest, approve=True, approver="carol", reason=None, channel="local",
                                 identity={"user": "carol"}, self_approval=True) is None
            needed.append(broker.still_needed(req.id))
            carol = {"subject": "c-3", "email": "carol@example.com", "name": "carol"}  # carol again, remotely
            try:
                broker.decide(req.id, req.digest, approve=True, approver="carol@example.com", reason=None,
                              channel="remote", nonce=req.nonce, identity=carol)
            except DecisionRefused as exc:
                errors.append(str(exc))
            broker.decide(req.id, req.digest, approve=True, approver="bob@example.com", reason="ok",
                          channel="remote", nonce=req.nonce, identity={"subject": "b-2", "email": "bob@example.com"})
            needed.append(broker.still_needed(req.id))
        return verdicts[0], needed, errors

    verdict, needed, errors = anyio.run(main)
    assert needed == [2, 1, 0]
    assert verdict.approved and verdict.approver == "bob@example.com, carol"
    assert len(errors) == 1 and "already approved" in errors[0] and "(as carol)" in errors[0]


def test_a_self_approval_channel_lets_the_requester_approve_once() -> None:
    verdict, errors, _ = anyio.run(
        decide_while_waiting, request(approvers=2),
        {"approve": True, "approver": "alice", "reason": None, "identity": {"user": "alice"}, "self_approval": True},
        {"approve": True, "approver": "alice@example.com", "reason": None, "identity": {"name": "alice"},
         "self_approval": True},
        {"approve": True, "approver": "bob", "reason": None, "identity": {"subject": "bob"}})
    assert verdict.approved and verdict.approver == "alice, bob"
    assert len(errors) == 1 and "already approved" in errors[0]
