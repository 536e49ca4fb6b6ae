"""Approvals end to end with real processes: a `relay run` session in front of the demo payments server, and a
second process (`relay approvals list`, `relay approve`, `relay deny`) deciding over the local channel.

Covers approval and denial with reasons, progress while waiting, timeout, cancellation by the client, a decision
for other arguments and a replayed decision refused, several calls pending while others pass, policy denials
as tool errors, and the approval records in the signed transcript."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from relay.approval.local import ask, socket_dir
from tests.support.approvals import DEMO, PAN, REFUND, answer, call, pending, relay_cli, transcript
from tests.support.processes import RELAY, RawClient, relay_env

POLICY = """\
approvals:
  default: allow
  timeout: {timeout}
  rules:
    - match: {{tool: "refund_*"}}
      action: require_approval
      channels: [local]
    - match: {{tool: export_transactions, args: {{"/limit": {{gt: 100}}}}}}
      action: deny
      reason: bulk exports need a ticket
"""


def start(tmp_path: Path, timeout: str = "30s") -> RawClient:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(POLICY.format(timeout=timeout))
    c = RawClient([*RELAY, "--config", str(cfg), "run", "--", *DEMO], env=relay_env(tmp_path))
    c.initialize()
    return c














def test_a_flagged_call_waits_then_runs_when_approved(tmp_path: Path) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND, progress="p-1")
        [item] = pending(tmp_path)
        assert item["tool"] == "refund_payment" and item["rule"] == "rule 1"
        assert PAN not in json.dumps(item)  # the approver sees masked arguments
        assert item["arguments"]["order_id"] == "ord_1001"
        # A call that needs no approval goes through meanwhile.
        call(c, 11, "lookup_order", {"order_id": "ord_1001"})
        seen: list[Any] = []
        assert "result" in answer(c, 11, seen)
        time.sleep(2.5)  # long enough for a progress notification
        done = relay_cli(tmp_path, "approve", item["id"], "--reason", "ticket 42")
        assert done.returncode == 0, done.stderr
        result = answer(c, 10, seen)
        assert "result" in result and not result["result"].get("isError"), result
        progress = [m for m in seen if m.get("method") == "notifications/progress"]
        assert progress and progress[0]["params"]["progressToken"] == "p-1"
        assert c.close() == 0
    approvals = [r for r in transcript(tmp_path) if r["type"] == "approval"]
    assert [a["decision"] for a in approvals] == ["requested", "approved"]
    assert approvals[1]["by"] == getpass.getuser() and approvals[1]["reason"] == "ticket 42"
    assert approvals[1]["channel"] == "local" and approvals[1]["digest"] == item["digest"]


def test_a_denial_reaches_the_agent_as_a_tool_error_with_the_reason(tmp_path: Path) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        assert relay_cli(tmp_path, "deny", item["id"], "--reason", "refunds over 500 need a ticket").returncode == 0
        result = answer(c, 10)["result"]
        assert result["isError"] is True
        assert result["content"][0]["text"] == f"Denied by {getpass.getuser()}: refunds over 500 need a ticket"
        # A policy denial, no human involved.
        call(c, 12, "export_transactions", {"limit": 500})
        denied = answer(c, 12)["result"]
        assert denied["isError"] and denied["content"][0]["text"] == "Denied by policy: bulk exports need a ticket"
        call(c, 13, "export_transactions", {"limit": 5})
        assert not answer(c, 13)["result"].get("isError")
        c.close()


def test_no_answer_within_the_timeout_is_a_denial(tmp_path: Path) -> None:
    with start(tmp_path, timeout="2s") as c:
        call(c, 10, "refund_payment", REFUND)
        result = answer(c, 10)["result"]
        assert result["isError"] and result["content"][0]["text"] == "No approver answered within 2s"
        c.close()
    assert [a["decision"] for a in transcript(tmp_path) if a["type"] == "approval"] == ["requested", "timeout"]


def test_the_client_cancelling_withdraws_the_request(tmp_path: Path) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        c.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 10}})
        deadline = time.monotonic() + 10
        while json.loads(relay_cli(tmp_path, "approvals", "list", "--json").stdout):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        late = relay_cli(tmp_path, "approve", item["id"])
        assert late.returncode == 2 and "no pending request" in late.stderr
        c.close()
    assert [a["decision"] for a in transcript(tmp_path) if a["type"] == "approval"] == ["requested", "withdrawn"]


def test_decisions_for_other_arguments_or_replayed_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND)
        call(c, 11, "refund_payment", {**REFUND, "amount": 500})
        items = pending(tmp_path, 2)
        first, second = sorted(items, key=lambda i: i["id"])
        monkeypatch.setenv("XDG_RUNTIME_DIR", relay_env(tmp_path)["XDG_RUNTIME_DIR"])
        path = next(socket_dir().glob("*.sock"))

        async def decide(item: dict[str, Any], digest: str) -> dict[str, Any]:
            return await ask(path, {"op": "decide", "id": item["id"], "digest": digest, "approve": True})

        # The 5.00 refund's approval cannot release the 500.00 one: the digest names the arguments.
        refused = anyio.run(decide, second, first["digest"])
        assert "digest mismatch" in refused["error"]
        assert anyio.run(decide, first, first["digest"]) == {"ok": True, "decided": True}
        assert "already decided" in anyio.run(decide, first, first["digest"])["error"]  # replayed
        assert "result" in answer(c, 10)
        assert relay_cli(tmp_path, "deny", second["id"]).returncode == 0
        assert answer(c, 11)["result"]["isError"] is True
        c.close()
