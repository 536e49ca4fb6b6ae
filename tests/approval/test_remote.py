"""The remote approval channel end to end: a real `relay run` session in front of the demo payments server, a
real approval service on loopback (tests/support/approval_service.py, docs/approval-protocol.md) and, for the
authenticated path, a real OpenID provider whose `ci-bot` client is relay's identity at the service.

Covers approval and denial through the service, several calls pending at once, the checks relay makes itself
(self-approval, digest, nonce: refused, recorded, the request reopened), a malformed decision, a service that is
down or goes away (fail closed), refused credentials, and the timeout withdrawing the request at the service."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.approval.request import arguments_digest
from tests.support.approval_service import ApprovalService, introspecting
from tests.support.approvals import DEMO, PAN, REFUND, answer, call, pending, relay_cli, transcript
from tests.support.oidc import CI_BOT, CI_BOT_SECRET, OidcProvider
from tests.support.processes import RELAY, RawClient, relay_env

BOB = {"subject": "bob-sub", "name": "Bob", "email": "bob@example.com"}
ME = getpass.getuser()  # the requester: the session has no identity of its own

CONFIG = """\
{identities}
approvals:
  timeout: {timeout}
  remote: {{url: "{url}"{identity}}}
  rules:
    - match: {{tool: "refund_*"}}
      action: require_approval
      channels: [{channels}]
"""


@pytest.fixture(scope="module")
def op() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        yield provider


@pytest.fixture
def service() -> Iterator[ApprovalService]:
    with ApprovalService() as s:
        yield s


def start(tmp_path: Path, service: ApprovalService, *, op: OidcProvider | None = None, timeout: str = "30s",
          channels: str = "remote") -> RawClient:
    identities = identity = ""
    if op is not None:
        identities = (f'identities:\n  ci: {{issuer: "{op.issuer}", client_id: {CI_BOT}, flow: client_credentials, '
                      "client_secret_env: CI_SECRET}")
        identity = ", identity: ci"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(identities=identities, timeout=timeout, url=service.url, identity=identity,
                                 channels=channels))
    env = relay_env(tmp_path, CI_SECRET=CI_BOT_SECRET)
    c = RawClient([*RELAY, "--config", str(cfg), "run", "--", *DEMO], env=env)
    c.initialize()
    return c


def text(result: dict[str, Any]) -> str:
    assert result["result"]["isError"] is True, result
    return str(result["result"]["content"][0]["text"])


def approvals(tmp_path: Path) -> list[dict[str, Any]]:
    return [r for r in transcript(tmp_path) if r["type"] == "approval"]


def test_a_bot_session_is_approved_and_denied_through_the_service(tmp_path: Path, op: OidcProvider) -> None:
    with ApprovalService(authenticate=introspecting(op.issuer, CI_BOT, CI_BOT_SECRET)) as service, \
            start(tmp_path, service, op=op) as c:
        call(c, 10, "refund_payment", REFUND)
        call(c, 11, "refund_payment", {**REFUND, "amount": 7})
        call(c, 12, "refund_payment", {**REFUND, "amount": 9})
        items = {i["arguments"]["amount"]: i for i in service.pending(3)}  # several pending at once
        first = items[5]
        assert first["digest"] == arguments_digest(REFUND) and first["requester"] == {"user": ME}
        assert PAN not in json.dumps(first) and first["tool"] == "refund_payment" and first["approvers"] == 1
        assert {e.caller for e in service.entries.values()} == {CI_BOT}  # relay authenticated as the bot
        call(c, 13, "lookup_order", {"order_id": "ord_1001"})  # a call that needs no approval passes meanwhile
        assert "result" in answer(c, 13)
        service.decide(items[7]["service_id"], approve=False, approver=BOB, reason="not this one")
        assert text(answer(c, 11)) == "Denied by bob@example.com: not this one"
        service.decide(first["service_id"], approve=True, approver=BOB, reason="ticket 42")
        assert not answer(c, 10)["result"].get("isError")
        service.decide(items[9]["service_id"], approve=True, approver={"subject": "carol"})
        assert not answer(c, 12)["result"].get("isError")
        assert c.close() == 0
        assert not any(e.deleted for e in service.entries.values())  # decided requests are not withdrawn
    assert CI_BOT_SECRET not in c.stderr
    records = approvals(tmp_path)
    approved = [r for r in records if r["decision"] == "approved"]
    assert {(r["by"], r["channel"]) for r in approved} == {("bob@example.com", "remote"), ("carol", "remote")}
    assert next(r for r in approved if r["by"] == "bob@example.com")["reason"] == "ticket 42"
    assert [r["by"] for r in records if r["decision"] == "denied"] == ["bob@example.com"]
    assert all(r["channels"] == ["remote"] for r in records if r["decision"] == "requested")


def test_relay_refuses_self_approval_and_decisions_for_other_arguments(tmp_path: Path,
                                                                       service: ApprovalService) -> None:
    with start(tmp_path, service) as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = service.pending(1)
        sid = item["service_id"]
        entry = service.entries[sid]
        # Offered on the remote channel only: the local one neither lists it nor takes a decision for it.
        assert json.loads(relay_cli(tmp_path, "approvals", "list", "--json").stdout) == []
        assert "no pending request" in relay_cli(tmp_path, "approve", item["id"]).stderr
        # A service that lets the requester approve: relay refuses, tells the service, and the call still waits.
        service.decide(sid, approve=True, approver={"subject": ME}, check=False)
        service.wait_for(lambda: len(entry.refusals) == 1 and entry.state == "pending")
        assert "no self-approval" in entry.refusals[0]
        service.decide(sid, approve=True, approver=BOB, digest="0" * 64)
        service.wait_for(lambda: len(entry.refusals) == 2 and entry.state == "pending")
        assert "digest mismatch" in entry.refusals[1]
        service.decide(sid, approve=True, approver=BOB)
        assert not answer(c, 10)["result"].get("isError")
        call(c, 11, "refund_payment", {**REFUND, "amount": 6})
        [other] = service.pending(1)
        service.decide(other["service_id"], approve=True, approver=BOB, nonce="replayed")
        service.wait_for(lambda: bool(service.entries[other["service_id"]].refusals))
        service.decide(other["service_id"], approve=False, approver=BOB)
        assert text(answer(c, 11)) == "Denied by bob@example.com"
        c.close()
    refused = [r for r in approvals(tmp_path) if r["decision"] == "refused"]
    assert [(r["by"], r["channel"]) for r in refused] == [(ME, "remote"), ("bob@example.com", "remote"),
                                                           ("bob@example.com", "remote")]
    assert ["no self-approval" in refused[0]["reason"], "digest mismatch" in refused[1]["reason"],
            "nonce mismatch" in refused[2]["reason"]] == [True, True, True]


def test_a_malformed_decision_denies_the_call(tmp_path: Path, service: ApprovalService) -> None:
    def bound(item: dict[str, Any], **rest: Any) -> dict[str, Any]:
        return {"digest": item["digest"], "nonce": item["nonce"], **rest}

    cases: list[tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = [
        (lambda item: {"state": "approved", "approver": BOB}, "'digest' is missing"),
        (lambda item: {"state": "maybe"}, "'state' is not pending, approved, denied or withdrawn"),
        (lambda item: bound(item, state="approved", approver={"subject": 7}), "the approver's 'subject' is not a string"),
        (lambda item: bound(item, state="denied", approver={"issuer": "x"}), "the approver has no subject, email or name"),
        (lambda item: bound(item, state="approved", approver=BOB, reason=["no"]), "'reason' is not a string"),
    ]
    with start(tmp_path, service) as c:
        for n, (answer_for, why) in enumerate(cases):
            call(c, 10 + n, "refund_payment", {**REFUND, "amount": n + 1})
            [item] = service.pending(1)
            service.answer(item["service_id"], answer_for(item))
            assert text(answer(c, 10 + n)) == f"Denied: the approval service sent a malformed decision: {why}"
            service.wait_for(lambda: service.entries[item["service_id"]].deleted)  # noqa: B023 - waited on here
        c.close()
    denied = [r for r in approvals(tmp_path) if r["decision"] == "denied"]
    assert len(denied) == len(cases) and all(r["channel"] == "remote" and r["by"] is None for r in denied)


def test_a_service_that_is_down_or_goes_away_denies_the_call(tmp_path: Path, service: ApprovalService) -> None:
    with start(tmp_path, service) as c:
        call(c, 10, "refund_payment", REFUND)
        service.pending(1)
        service.stop()  # while relay long-polls
        assert text(answer(c, 10)).startswith("Denied: the approval service is unreachable: ")
        began = time.monotonic()
        call(c, 11, "refund_payment", REFUND)
        assert text(answer(c, 11)).startswith("Denied: the approval service is unreachable: ConnectError")
        assert time.monotonic() - began < 5  # at once, not at the timeout
        c.close()
    assert [r["decision"] for r in approvals(tmp_path)] == ["requested", "denied", "requested", "denied"]


def test_with_local_as_well_a_service_that_is_down_leaves_the_local_channel(tmp_path: Path,
                                                                             service: ApprovalService) -> None:
    service.stop()
    with start(tmp_path, service, channels="local, remote") as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        deadline = time.monotonic() + 10
        while "channel remote is unavailable" not in c.stderr:
            assert time.monotonic() < deadline, c.stderr
            time.sleep(0.1)
        assert relay_cli(tmp_path, "approve", item["id"]).returncode == 0
        assert not answer(c, 10)["result"].get("isError")
        c.close()
    records = approvals(tmp_path)
    assert [r["decision"] for r in records] == ["requested", "unavailable", "approved"]
    assert records[1]["channel"] == "remote" and records[2]["channel"] == "local"


def test_refused_credentials_deny_the_call(tmp_path: Path) -> None:
    with ApprovalService(tokens={"the-right-token"}) as service, start(tmp_path, service) as c:
        call(c, 10, "refund_payment", REFUND)
        assert text(answer(c, 10)) == "Denied: the approval service refused relay's credentials (HTTP 401)"
        c.close()


def test_the_timeout_withdraws_the_request_at_the_service(tmp_path: Path, service: ApprovalService) -> None:
    with start(tmp_path, service, timeout="2s") as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = service.pending(1)
        assert text(answer(c, 10)) == "No approver answered within 2s"
        service.wait_for(lambda: service.entries[item["service_id"]].deleted)
        assert service.entries[item["service_id"]].state == "withdrawn"
        service.decide(item["service_id"], approve=True, approver=BOB)  # too late: nothing is released
        call(c, 11, "lookup_order", {"order_id": "ord_1001"})
        assert "result" in answer(c, 11)
        c.close()
    assert [r["decision"] for r in approvals(tmp_path)] == ["requested", "timeout"]
