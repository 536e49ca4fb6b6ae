"""`relay approvals`, the live view: the key handler and the renderer without a terminal, and the command itself
on a pseudo-terminal, approving and denying a real relay session's call with single keys."""

from __future__ import annotations

import fcntl
import getpass
import io
import json
import re
import subprocess
import termios
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from relay.approval.request import ApprovalRequest, arguments_digest
from relay.cli.approvals_view import (
    EMPTY,
    HELP,
    MARKER,
    Decide,
    Entry,
    Quit,
    ViewState,
    after_decision,
    handle_key,
    parse_keys,
    render,
    time_left,
    with_pending,
)
from tests.support.approvals import DEMO, PAN, REFUND, answer, call, pending
from tests.support.processes import RELAY, RawClient, relay_env
from tests.support.terminal import PseudoTerminal

NOW = 1_800_000_000.0
SOCKET = Path("/run/relay-test/approvals/s.sock")  # never opened: the unit tests only carry it along


def entry(id_: str, tool: str = "refund_payment", left: float = 245, **more: Any) -> Entry:
    arguments = more.pop("arguments", {"order_id": "ord_1001", "amount": 5, "reason": "card 411111******1111"})
    request = ApprovalRequest(id=id_, session="20270115T080000Z-0a1b2c3d", server="payments", tool=tool,
                              digest=arguments_digest(arguments), requester=more.pop("requester", {"user": "alice"}),
                              arguments=arguments, rule=more.pop("rule", "rule 1"),
                              reason=more.pop("reason", "refunds move money"), expires_at=NOW + left,
                              created_at=NOW - 5, **more)
    return Entry(SOCKET, request.public())


def screen(state: ViewState, width: int = 120, height: int = 40, color: bool = False) -> str:
    out = Console(width=width, file=io.StringIO(), force_terminal=color, color_system="standard" if color else None)
    out.print(render(state, NOW, height, width))
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def press(state: ViewState, *keys: str) -> tuple[ViewState, Any]:
    action = None
    for key in keys:
        state, action = handle_key(state, key)
    return state, action


THREE = (entry("ab12-1"), entry("ab12-2", tool="export_transactions"), entry("cd34-1", left=12))


# -- keys ------------------------------------------------------------------------------------------------------


def test_parse_keys_names_arrows_enter_backspace_and_keeps_a_split_escape_for_the_next_read() -> None:
    assert parse_keys("\x1b[Aj\x1bOB\r\x7fé") == (["up", "j", "down", "enter", "backspace", "é"], "")
    assert parse_keys("k\x1b") == (["k"], "\x1b")  # Esc, or the start of an arrow key: wait for more
    assert parse_keys("\x1b[") == ([], "\x1b[")
    assert parse_keys("\x1b", final=True) == (["esc"], "")
    assert parse_keys("\x1b[1;5C\x1b[4~") == (["end"], "")  # unknown sequences are dropped whole


def test_the_selection_moves_with_arrows_and_j_k_and_stays_in_bounds() -> None:
    state = with_pending(ViewState(), THREE)
    assert state.selected == "ab12-1"
    assert press(state, "down")[0].selected == "ab12-2"
    assert press(state, "j", "j", "j", "j")[0].selected == "cd34-1"
    assert press(state, "j", "j", "k")[0].selected == "ab12-2"
    assert press(state, "up", "k")[0].selected == "ab12-1"
    assert press(state, "end")[0].selected == "cd34-1" and press(state, "end", "home")[0].selected == "ab12-1"


def test_a_and_d_decide_on_the_selected_request_with_the_digest_that_was_shown() -> None:
    state = with_pending(ViewState(), THREE)
    _, approve = press(state, "j", "a")
    assert approve == Decide(THREE[1], True, None)
    assert approve.entry.item["digest"] == THREE[1].item["digest"] and approve.entry.path == SOCKET
    assert press(state, "d")[1] == Decide(THREE[0], False, None)
    assert isinstance(press(state, "q")[1], Quit)
    assert press(state, "x") == (state, None)


def test_nothing_to_decide_in_an_empty_list() -> None:
    state, action = press(ViewState(), "a")
    assert action is None and state.status == "nothing is selected"
    assert press(ViewState(), "down")[0].selected is None


def test_r_asks_approve_or_deny_then_a_line_of_reason_and_enter_sends() -> None:
    state = with_pending(ViewState(), THREE)
    state, _ = press(state, "j", "r")
    assert state.mode == "choose" and state.target == THREE[1]
    # Letters are text here, not keys: j, k, a, d and q neither move, decide nor quit.
    state, action = press(state, "d", *"jk: a dq ticket", "x", "backspace")
    assert action is None and state.mode == "reason" and state.reason == "jk: a dq ticket"
    assert state.selected == "ab12-2"
    state, action = press(state, "enter")
    assert action == Decide(THREE[1], False, "jk: a dq ticket")
    assert state.mode == "list" and state.reason == ""


def test_esc_cancels_the_reason_and_an_empty_reason_is_none() -> None:
    state = with_pending(ViewState(), THREE)
    cancelled, action = press(state, "r", "a", *"oops", "esc")
    assert action is None and cancelled.mode == "list" and cancelled.status.startswith("cancelled")
    assert press(state, "r", "x")[0].mode == "list"  # neither a nor d: cancelled too
    assert press(state, "r", "a", " ", "enter")[1] == Decide(THREE[0], True, None)


def test_requests_that_go_away_vanish_and_the_selection_stays_on_its_id() -> None:
    state = press(with_pending(ViewState(), THREE), "j")[0]
    assert state.selected == "ab12-2"
    # Another request arrives ahead of it, and one is decided elsewhere: the selection follows its request.
    later = with_pending(state, (entry("ef56-1"), THREE[1], THREE[2]))
    assert [e.id for e in later.entries] == ["ef56-1", "ab12-2", "cd34-1"] and later.selected == "ab12-2"
    # The selected one goes: the selection stays on its row.
    gone = with_pending(later, (later.entries[0], later.entries[2]))
    assert gone.selected == "cd34-1"
    assert with_pending(gone, ()).selected is None


def test_a_reason_being_typed_for_a_request_that_goes_away_is_dropped() -> None:
    state = press(with_pending(ViewState(), THREE), "r", "a", *"ok")[0]
    state = with_pending(state, THREE[1:])
    assert state.mode == "list" and state.target is None
    assert state.status.startswith("ab12-1 is no longer waiting")


def test_the_status_line_says_what_the_relay_answered() -> None:
    state = with_pending(ViewState(), THREE)
    ok = after_decision(state, Decide(THREE[0], True, None), {"ok": True, "decided": True})
    assert (ok.status, ok.tone, ok.done) == ("approved ab12-1", "ok", ("approved ab12-1",))
    more = after_decision(state, Decide(THREE[0], True, "ticket 42"), {"ok": True, "decided": False})
    assert more.status == "approved ab12-1 (more approvers are needed): ticket 42"
    refused = after_decision(state, Decide(THREE[0], False, None),
                             {"error": "the decision names other arguments than request ab12-1 (digest mismatch)"})
    assert refused.tone == "error" and refused.done == ()
    assert refused.status == "not denied: the decision names other arguments than request ab12-1 (digest mismatch)"


# -- drawing -----------------------------------------------------------------------------------------------------


def test_the_screen_shows_each_request_and_the_selected_one_in_detail() -> None:
    state = with_pending(ViewState(), (entry("ab12-1", requester={"name": "Alice Example", "subject": "u-1"},
                                             approvers=2), THREE[2]))
    text = screen(after_decision(state, Decide(THREE[2], True, None), {"ok": True, "decided": True}))
    assert "relay approvals  2 waiting" in text
    [row] = [line for line in text.splitlines() if "ab12-1" in line and MARKER in line]
    assert "payments / refund_payment" in row and "Alice Example" in row and "4m 05s" in row and "rule 1" in row
    assert '{"order_id": "ord_1001"' in row
    [other] = [line for line in text.splitlines() if "cd34-1" in line and "approved" not in line]
    assert MARKER not in other and "12s" in other
    # The detail pane: the full masked arguments, the digest prefix, the rule's reason, approvers needed.
    assert '"reason": "card 411111******1111"' in text
    assert f"sha256 {state.entries[0].item['digest'][:16]}…" in text
    assert "rule 1: refunds move money" in text and "2 needed" in text and "subject u-1" in text
    assert "approved cd34-1" in text and text.rstrip().endswith(HELP)


def test_time_left_counts_down_and_turns_red_under_30_seconds() -> None:
    assert [time_left(s) for s in (3725, 245, 29.9, 0)] == ["1h 02m", "4m 05s", "29s", "expired"]
    state = with_pending(ViewState(), (entry("ab12-1", left=12),))
    assert re.search(r"\x1b\[[0-9;]*31m\s*12s", screen(state, color=True))
    calm = with_pending(ViewState(), (entry("ab12-1", left=245),))
    assert not re.search(r"\x1b\[[0-9;]*31m\s*4m", screen(calm, color=True))


def test_the_empty_screen_says_to_leave_it_open() -> None:
    text = screen(ViewState())
    assert EMPTY in text and HELP in text and "waiting" not in text.splitlines()[0]


def test_long_arguments_are_cut_in_the_row_and_in_the_detail_pane() -> None:
    big = {f"key_{i}": "v" * 50 for i in range(40)}
    text = screen(with_pending(ViewState(), (entry("ab12-1", arguments=big),)), width=100)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "… 30 more lines" in text and "key_39" not in text


def test_the_id_and_time_left_survive_a_narrow_terminal() -> None:
    text = screen(with_pending(ViewState(), (entry("ab12-1", tool="a_tool_with_a_very_long_name" * 3),)), width=60)
    [row] = [line for line in text.splitlines() if line.startswith(MARKER)]
    assert "ab12-1" in row and "4m 05s" in row and len(row) <= 60


def test_a_window_of_rows_keeps_the_selection_on_a_short_terminal() -> None:
    many = tuple(entry(f"ab12-{i}") for i in range(1, 31))
    state = press(with_pending(ViewState(), many), *["j"] * 25)[0]
    text = screen(state, height=30)
    [row] = [line for line in text.splitlines() if line.startswith(MARKER)]
    assert "ab12-26" in row
    assert "ab12-1 " not in text and re.search(r"\d+ above · \d+ below", text)
    assert len(text.splitlines()) <= 30


def test_control_characters_from_the_agent_or_server_are_shown_escaped() -> None:
    sneaky = entry("ab12-1", tool="refund\x1b[2J", requester={"name": "eve\u202egnp.exe"},
                   arguments={"note": "a\x9bb\u2028c"})
    text = screen(with_pending(ViewState(), (sneaky,)))
    assert "\x1b" not in text and "\u202e" not in text and "\x9b" not in text and "\u2028" not in text
    assert "refund\\x1b[2J" in text and "eve\\u202egnp.exe" in text


# -- the command on a pseudo-terminal ----------------------------------------------------------------------------

POLICY = """\
approvals:
  default: allow
  timeout: 60s
  rules:
    - match: {tool: "refund_*"}
      action: require_approval
      channels: [local]
"""
def start(tmp_path: Path) -> RawClient:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(POLICY)
    c = RawClient([*RELAY, "--config", str(cfg), "run", "--", *DEMO], env=relay_env(tmp_path))
    c.initialize()
    return c


def _controlling_terminal() -> None:
    # In the child, after setsid: the pty becomes its controlling terminal, so that Ctrl-C sends SIGINT.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`relay approvals` on a pseudo-terminal of 40x120: keys in, the screen's text (without escapes) out."""

    def __init__(self, tmp_path: Path) -> None:
        self.pty = PseudoTerminal(40, 120)
        env = relay_env(tmp_path, TERM="xterm")
        for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
            env.pop(name, None)
        slave = self.pty.slave
        self.proc = subprocess.Popen([*RELAY, "approvals"], stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True, preexec_fn=_controlling_terminal)

    def text(self) -> str:
        return self.pty.text()

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        def exited() -> str | None:
            code = self.proc.poll()
            return None if code is None else f"relay approvals exited {code}"

        self.pty.wait_for(needle, timeout, alive=exited)

    def press(self, keys: str) -> None:
        self.pty.write(keys)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def modes(self) -> int:
        """The terminal's local modes as relay approvals left them."""
        return self.pty.modes()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.pty.close()


@pytest.fixture
def terminal(tmp_path: Path) -> Any:
    opened: list[Terminal] = []

    def open_() -> Terminal:
        opened.append(Terminal(tmp_path))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


def test_pressing_a_approves_the_call_shown_and_q_quits(tmp_path: Path, terminal: Any) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        view = terminal()
        view.wait_for(item["id"])
        shown = view.text()
        assert "refund_payment" in shown and '"order_id": "ord_1001"' in shown and PAN not in shown
        view.press("a")
        result = answer(c, 10)
        assert "result" in result and not result["result"].get("isError"), result
        assert "ord_1001" in json.dumps(result["result"])
        view.wait_for(f"approved {item['id']}")
        view.wait_for("No calls are waiting for approval")  # and the request left the list
        view.press("q")
        assert view.wait() == 0
        assert view.modes() & (termios.ECHO | termios.ICANON) == termios.ECHO | termios.ICANON
        c.close()


def test_pressing_d_denies_the_call_and_ctrl_c_leaves_the_terminal_as_it_was(tmp_path: Path, terminal: Any) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        view = terminal()
        view.wait_for(item["id"])
        view.press("d")
        result = answer(c, 10)["result"]
        assert result["isError"] is True and result["content"][0]["text"] == f"Denied by {getpass.getuser()}"
        view.wait_for(f"denied {item['id']}")
        view.press("\x03")
        assert view.wait() == 0
        assert view.modes() & (termios.ECHO | termios.ICANON) == termios.ECHO | termios.ICANON
        c.close()


def test_r_sends_a_decision_with_the_reason_typed_and_esc_cancels(tmp_path: Path, terminal: Any) -> None:
    with start(tmp_path) as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = pending(tmp_path)
        view = terminal()
        view.wait_for(item["id"])
        view.press("ra")
        view.wait_for(f"reason for approving {item['id']}")
        view.press("oops\x1b")
        view.wait_for("cancelled, nothing was sent")
        view.press("rd")
        view.wait_for(f"reason for denying {item['id']}")
        view.press("needs a ticket\r")
        result = answer(c, 10)["result"]
        assert result["content"][0]["text"] == f"Denied by {getpass.getuser()}: needs a ticket"
        view.wait_for(f"denied {item['id']}: needs a ticket")
        view.press("q")
        assert view.wait() == 0
        c.close()


def test_without_a_terminal_it_points_to_the_commands_for_scripts(tmp_path: Path) -> None:
    out = subprocess.run([*RELAY, "approvals"], env=relay_env(tmp_path), stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and out.stdout == ""
    assert "`relay approvals` is interactive; use `relay approvals list`" in out.stderr
