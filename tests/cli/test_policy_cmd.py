"""`relay policy test SERVER TOOL`: the explanation on stderr, the decision as JSON on stdout with --json,
exit 0; a bad config or bad options exit 2 with a one-line diagnosis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import RELAY, ROOT, relay_env

CONFIG = """\
servers:
  payments: {url: https://mcp.payments.example/mcp}
approvals:
  default: deny
  timeout: 5m
  rules:
    - match: {server: payments, tool: "refund_*"}
      action: require_approval
      channels: [local, remote]
    - match: {tool: "export_*", args: {"/limit": {gt: 100}}}
      action: require_approval
      approvers: 2
    - match: {tool: "delete_*"}
      action: deny
      reason: deletes are never done by agents
    - match: {annotations: {readOnlyHint: true}, groups: [staff]}
      action: allow
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def policy_test(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELAY, "--config", str(cfg), "policy", "test", *args], env=relay_env(cfg.parent),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_a_match_is_explained_on_stderr_and_nothing_goes_to_stdout(cfg: Path) -> None:
    out = policy_test(cfg, "payments", "refund_payment")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"policy: {cfg}: 4 rule(s), default deny",
        "rule 0 (line 7, require_approval): MATCH: server is 'payments'; tool matches 'refund_*'",
        "rule 1 (line 10, require_approval): not reached",
        "rule 2 (line 13, deny): not reached",
        "rule 3 (line 16, allow): not reached",
        "decision: require_approval by rule 0 (line 7): 1 approver on local, remote, timeout 300s",
    ]


def test_json_decision_on_stdout(cfg: Path) -> None:
    out = policy_test(cfg, "orders", "export_rows", "--args", '{"limit": 500}', "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"action": "require_approval", "rule": 1, "line": 10, "reason": None,
                                      "channels": ["local"], "approvers": 2, "timeout": 300.0}
    assert "note: no server named 'orders' in the config" in out.stderr
    assert "rule 0 (line 7, require_approval): no: server 'orders' is not 'payments'" in out.stderr


def test_the_default_and_why_each_rule_failed(cfg: Path) -> None:
    out = policy_test(cfg, "payments", "export_rows", "--args", '{"limit": 50}', "--identity", "ana@corp.example",
                      "--group", "staff", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"action": "deny", "rule": None, "line": None,
                                      "reason": "no approval rule allows this call (approvals.default: deny)",
                                      "channels": [], "approvers": 0, "timeout": 300.0}
    assert "rule 1 (line 10, require_approval): no: argument /limit is 50, not > 100" in out.stderr
    assert "rule 3 (line 16, allow): no: annotation readOnlyHint is false (MCP default), not true" in out.stderr


def test_annotations_and_groups_from_options(cfg: Path) -> None:
    out = policy_test(cfg, "payments", "get_payment", "--annotation", "readOnlyHint=true", "--group", "staff",
                      "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rule"] == 3
    assert "MATCH: any server; any tool; annotations readOnlyHint=true; caller in staff" in out.stderr
    without = policy_test(cfg, "payments", "get_payment", "--annotation", "readOnlyHint=true", "--json")
    assert json.loads(without.stdout)["rule"] is None
    assert "rule 3 (line 16, allow): no: no caller identity (wanted a group of staff)" in without.stderr


def test_deny_reason(cfg: Path) -> None:
    out = policy_test(cfg, "payments", "delete_everything", "--json")
    assert json.loads(out.stdout)["reason"] == "deletes are never done by agents"
    assert "decision: deny by rule 2 (line 13): deletes are never done by agents" in out.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--args", "{not json"], "relay: error: --args is not valid JSON: "),
    (["--args", "[1, 2]"], "relay: error: --args must be a JSON object"),
    (["--annotation", "destructiveHint"], "relay: error: --annotation 'destructiveHint': expected KEY=VALUE"),
])
def test_bad_options_exit_2(cfg: Path, args: list[str], message: str) -> None:
    out = policy_test(cfg, "payments", "refund_payment", *args)
    assert out.returncode == 2
    assert out.stderr.startswith(message)
    assert out.stdout == ""


def test_a_policy_error_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("approvals:\n  rules:\n    - match: {tool: x}\n      action: deny\n      channels: [local]\n")
    out = policy_test(cfg, "payments", "x")
    assert out.returncode == 2
    assert out.stderr.startswith(f"relay: error: {cfg}:5: approvals.rules[0].channels: is only for action "
                                 "require_approval, not deny")


def test_the_example_config_is_valid_and_explains_its_rules(tmp_path: Path) -> None:
    example = ROOT / "config.example.yaml"
    check = subprocess.run([*RELAY, "--config", str(example), "config", "check"], capture_output=True, text=True,
                           timeout=60, cwd=ROOT, env=relay_env(tmp_path))
    assert check.returncode == 0, check.stderr
    out = subprocess.run([*RELAY, "--config", str(example), "policy", "test", "payments", "refund_payment", "--json"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, env=relay_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["channels"] == ["local", "remote"]
