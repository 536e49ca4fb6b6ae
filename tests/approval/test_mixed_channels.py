"""A rule that needs two approvers on two channels, end to end: a real `relay run` session, `relay approve` on the
local channel and a real approval service on loopback. Two people release the call whichever channel each uses;
one person on both channels does not."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.approval_service import ApprovalService
from tests.support.approvals import DEMO, REFUND, answer, call, pending, relay_cli, transcript
from tests.support.processes import RELAY, RawClient, relay_env

ME = getpass.getuser()
BOB = {"subject": "bob-sub", "name": "Bob", "email": "bob@example.com"}

CONFIG = """\
approvals:
  timeout: 30s
  remote: {{url: "{url}"}}
  rules:
    - match: {{tool: "refund_*"}}
      action: require_approval
      approvers: 2
      channels: [local, remote]
"""


@pytest.fixture
def service() -> Iterator[ApprovalService]:
    with ApprovalService() as s:
        yield s


def start(tmp_path: Path, service: ApprovalService) -> RawClient:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(url=service.url))
    c = RawClient([*RELAY, "--config", str(cfg), "run", "--", *DEMO], env=relay_env(tmp_path))
    c.initialize()
    return c


def approvals(tmp_path: Path) -> list[dict[str, Any]]:
    return [r for r in transcript(tmp_path) if r["type"] == "approval"]


def test_one_local_and_one_remote_approver_release_the_call(tmp_path: Path, service: ApprovalService) -> None:
    with start(tmp_path, service) as c:
        call(c, 3, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        local = relay_cli(tmp_path, "approve", item["id"], "--reason", "looked at it")
        assert local.returncode == 0 and "more approvers are needed" in local.stdout + local.stderr
        [remote] = service.pending()
        assert remote["approvers"] == 2
        service.decide(remote["service_id"], approve=True, approver=BOB, reason="ok")
        result = answer(c, 3)
        assert not result["result"].get("isError"), result
        assert c.close() == 0
    decided = approvals(tmp_path)[-1]
    assert decided["decision"] == "approved" and decided["by"] == ", ".join(sorted([ME, "bob@example.com"]))


def test_the_local_approver_cannot_be_the_second_approver_too(tmp_path: Path, service: ApprovalService) -> None:
    with start(tmp_path, service) as c:
        call(c, 3, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        assert relay_cli(tmp_path, "approve", item["id"]).returncode == 0
        again = relay_cli(tmp_path, "approve", item["id"])
        assert again.returncode != 0 and "already approved" in again.stderr
        # The same OS user, now as an account at the service (the service's own self-approval rule is off here).
        [remote] = service.pending()
        service.decide(remote["service_id"], approve=True, approver={"name": ME}, check=False)
        entry = service.entries[remote["service_id"]]
        service.wait_for(lambda: entry.state == "pending" and bool(entry.refusals))
        assert "no self-approval" in entry.refusals[0]
        service.decide(remote["service_id"], approve=True, approver=BOB)
        assert not answer(c, 3)["result"].get("isError")
        assert c.close() == 0
    records = approvals(tmp_path)
    refused = [r for r in records if r["decision"] == "refused"]
    assert [r["channel"] for r in refused] == ["local", "remote"]
    assert records[-1]["decision"] == "approved"
