"""The tty channel end to end: `relay run` in a pipeline started by hand (stdin and stdout are pipes to the MCP
client) with a real pseudo-terminal as its controlling terminal; the person answers the prompt there."""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from relay.approval.tty import parse
from tests.support.approvals import DEMO, PAN, REFUND, answer, call, transcript
from tests.support.processes import RELAY, RawClient, relay_env
from tests.support.terminal import PseudoTerminal

POLICY = """\
approvals:
  timeout: 20s
  rules:
    - match: {tool: "refund_*"}
      action: require_approval
      channels: [tty]
"""

# Makes the pty's slave the controlling terminal of a new session, then becomes relay (stdio stay the pipes).
WITH_TERMINAL = ("import os, sys; os.setsid(); os.close(os.open(sys.argv[1], os.O_RDWR)); "
                 "os.execv(sys.argv[2], sys.argv[2:])")


class Terminal(PseudoTerminal):
    def type(self, line: str) -> None:
        self.write(line + "\n")


def start(tmp_path: Path, term: Terminal) -> RawClient:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(POLICY)
    argv = [sys.executable, "-c", WITH_TERMINAL, term.name, *RELAY, "--config", str(cfg), "run", "--", *DEMO]
    c = RawClient(argv, env=relay_env(tmp_path))
    c.initialize()
    return c


@pytest.fixture
def term() -> Any:
    t = Terminal()
    yield t
    t.close()


def test_the_person_at_the_terminal_approves(tmp_path: Path, term: Terminal) -> None:
    with start(tmp_path, term) as c:
        call(c, 5, "refund_payment", REFUND)
        screen = term.wait_for("Approve?", timeout=20)
        assert "refund_payment" in screen
        assert PAN not in screen and "ord_1001" in screen  # masked arguments
        mark = len(term.text())
        term.type("maybe")  # not an answer: asked again
        term.wait_for("Approve?", timeout=5, since=mark)
        term.type("y ticket 7")
        result = answer(c, 5)
        assert not result["result"].get("isError"), result
        assert "approved" in term.wait_for("relay: approved")
        assert c.close() == 0
    approved = [r for r in transcript(tmp_path) if r["type"] == "approval"][-1]
    assert approved["decision"] == "approved" and approved["channel"] == "tty"
    assert approved["by"] == getpass.getuser() and approved["reason"] == "ticket 7"


def test_the_person_at_the_terminal_denies_and_calls_are_asked_in_turn(tmp_path: Path, term: Terminal) -> None:
    with start(tmp_path, term) as c:
        call(c, 5, "refund_payment", REFUND)
        call(c, 6, "refund_payment", {**REFUND, "amount": 9})
        term.wait_for("Approve?")
        assert term.text().count("Approve?") == 1  # one question at a time
        mark = len(term.text())
        term.type("n not today")
        first = answer(c, 5)
        assert first["result"]["isError"] and first["result"]["content"][0]["text"].endswith("not today")
        assert '"amount": 9' in term.wait_for("Approve?", since=mark)
        term.type("y")
        assert not answer(c, 6)["result"].get("isError")
        assert c.close() == 0


def test_no_terminal_means_the_channel_is_unavailable(tmp_path: Path) -> None:
    """Spawned without a controlling terminal (as by an assistant): tty alone cannot ask anyone, so it is denied."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(POLICY)
    argv = [sys.executable, "-c", "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])",
            *RELAY, "--config", str(cfg), "run", "--", *DEMO]
    with RawClient(argv, env=relay_env(tmp_path)) as c:
        c.initialize()
        call(c, 5, "refund_payment", REFUND)
        result = answer(c, 5)
        assert result["result"]["isError"] and "no terminal" in result["result"]["content"][0]["text"]
        assert c.close() == 0


@pytest.mark.parametrize(("line", "expected"), [
    ("y", (True, None)), ("YES", (True, None)), ("a looks right", (True, "looks right")),
    ("n", (False, None)), ("deny  over the limit ", (False, "over the limit")), ("n bad\x1b[2J", (False, "bad [2J")),
    ("", None), ("maybe", None), ("yep", None),
])
def test_parse(line: str, expected: Any) -> None:
    assert parse(line) == expected


def test_a_terminal_that_carries_the_protocol_is_not_asked() -> None:
    import anyio

    from relay.approval.broker import Broker
    from relay.approval.channels import ChannelUnavailable, ClientLink
    from relay.approval.request import ApprovalRequest
    from relay.approval.tty import TtyChannel

    req = ApprovalRequest(id="r-1", session="s", server="payments", tool="refund_payment", digest="d" * 64,
                          requester={"user": "alice"}, arguments={}, rule="rule 1", reason=None,
                          expires_at=time.time() + 30)
    channel = TtyChannel(protocol_on_terminal=True, path="/nonexistent")
    with pytest.raises(ChannelUnavailable, match="carries the MCP protocol"):
        anyio.run(channel.offer, req, Broker(), ClientLink())


def test_what_the_agent_chose_is_shown_escaped() -> None:
    from relay.approval.request import ApprovalRequest
    from relay.approval.tty import describe

    req = ApprovalRequest(id="r-1", session="s", server="payments", tool="refund\x1b[2J\u202e", digest="d" * 64,
                          requester={"user": "alice"}, arguments={"note": "a\u202eb\x9b"}, rule="rule 1",
                          reason=None, expires_at=time.time() + 30)
    text = describe(req)
    assert "\x1b" not in text and "\u202e" not in text and "\x9b" not in text
    assert "refund\\x1b[2J\\u202e" in text and text.startswith("\nrelay: approval r-1")


def test_relay_call_run_by_hand_asks_on_its_terminal(tmp_path: Path, term: Terminal) -> None:
    """`relay call` in a script started from a terminal: stdout carries the result, the terminal the question."""
    import json
    import subprocess

    cfg = tmp_path / "config.yaml"
    cfg.write_text(POLICY)
    argv = [sys.executable, "-c", WITH_TERMINAL, term.name, *RELAY, "--config", str(cfg), "call",
            "refund_payment", "--json", json.dumps(REFUND), "--", *DEMO]
    proc = subprocess.Popen(argv, env=relay_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        term.wait_for("Approve?")
        term.type("y")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert not result.get("isError") and PAN not in out.decode()
