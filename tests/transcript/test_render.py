"""relay.transcript.render: sessions read back as a timeline, a JSON export and an HTML report, from files the
real session writer signed; a transcript is untrusted input, so escaping is tested with hostile content."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.errors import UsageError
from relay.transcript import render
from relay.transcript.verify import Result, Trust, verify_paths
from relay.transcript.writer import SessionWriter

SERVER = {"name": "payments", "transport": "stdio", "command": "payments-server"}
SID = "20260101T000000Z-aaaa0001"
INIT = (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},'
        b'"clientInfo":{"name":"claude-code","version":"2.1.0"}}}')
CALL = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"lookup_order","arguments":{"order_id":"o_1"}}}'
RESULT = (b'{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"card ************1111"},'
          b'{"type":"text","text":"cvv [masked]"}]}}')
MASKED = [{"guard": "masking", "actions": [{"rule": "pan", "pointer": "/result/content/0/text", "count": 1},
                                           {"rule": "pan", "pointer": "/result/structuredContent/card", "count": 1},
                                           {"rule": "cvv", "pointer": "/result/content/1/text", "count": 1}]}]


Step = tuple[str, dict[str, Any], bytes | None]


def write(directory: Path, steps: list[Step], *, session: str = SID, key: Ed25519PrivateKey | None = None,
          seal: bool = True) -> Path:
    """A session file written and signed by the real writer."""
    key = key or Ed25519PrivateKey.generate()
    w = SessionWriter(directory, session, SERVER, key)
    for type_, fields, message in steps:
        w.write(type_, fields, message)
    if seal:
        w.seal("client_closed", key)
    else:
        w._abandon()  # as a killed relay leaves it: no seal
    return w.path


def msg(dir_: str, kind: str, raw: bytes, **fields: Any) -> Step:
    return "message", {"dir": dir_, "kind": kind, **fields}, raw


CALL_STEPS: list[Step] = [
    msg("c2s", "request", INIT, id=1, method="initialize"),
    msg("c2s", "request", CALL, id=3, method="tools/call", tool="lookup_order"),
    msg("s2c", "response", RESULT, id=3, method="tools/call", tool="lookup_order", notes=MASKED),
]


def test_timeline_reads_what_the_agent_asked_and_received(tmp_path: Path) -> None:
    s = render.load(write(tmp_path, CALL_STEPS))
    rows = render.timeline(s)
    assert [r.kind for r in rows] == ["genesis", "message", "message", "message", "seal"]
    assert rows[0].offset == "+0.000s" and all(r.offset.startswith("+") for r in rows)
    assert "server payments (stdio payments-server)" in rows[0].summary
    assert (rows[1].direction, rows[1].what) == ("agent -> server", "initialize")
    assert rows[1].summary == "client claude-code 2.1.0, protocol 2025-11-25"
    assert (rows[2].what, rows[2].summary) == ("tools/call lookup_order", '{"order_id": "o_1"}')
    assert rows[3].direction == "server -> agent" and rows[3].what == "tools/call lookup_order (response)"
    assert rows[3].summary == "card ************1111 | cvv [masked]"
    assert rows[3].notes == ["masked: 2 x pan, 1 x cvv"]
    assert rows[4].summary == "sealed: 5 records, reason client_closed"
    assert s.client() == ("claude-code", "2.1.0") and s.tool_calls() == 1
    assert dict(render.header(s))["client"] == "claude-code 2.1.0"


def test_errors_approvals_acks_and_tool_errors_are_summarised(tmp_path: Path) -> None:
    steps: list[Step] = [
        msg("s2c", "error", b'{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"no such order"}}',
            id=4, method="tools/call", tool="lookup_order"),
        msg("s2c", "response", b'{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"boom"}],'
                               b'"isError":true}}', id=5, method="tools/call", tool="refund"),
        ("error", {"event": "upstream_fault", "reason": "invalid JSON from the server", "code": -32700}, None),
        ("approval", {"request": 7, "tool": "refund_payment", "decision": "approved", "by": "ana"}, None),
        ("ack", {"collector": "https://user:secret@collector.example/v1?token=abc", "acked": 6, "head": "ab" * 8},
         None),
    ]
    rows = render.timeline(render.load(write(tmp_path, steps)))
    assert rows[1].summary == "error -32602: no such order"
    assert rows[2].summary == "tool error: boom"
    assert rows[3].what == "relay error: upstream_fault"
    assert rows[3].summary == "reason invalid JSON from the server, code -32700"
    assert rows[4].what == "approval"
    assert rows[4].summary == "request 7, tool refund_payment, decision approved, by ana"
    # The URL as recorded may carry credentials: the timeline shows where, not who.
    assert rows[5].summary == f"acknowledged by https://collector.example/v1: acked 6, head {'ab' * 8}"
    assert "secret" not in rows[5].summary and "token" not in rows[5].summary


def test_a_pretty_printed_message_is_read_from_message_text(tmp_path: Path) -> None:
    pretty = b'{\n  "jsonrpc": "2.0",\n  "id": 3,\n  "result": {"content": [{"type": "text", "text": "hi"}]}\n}'
    path = write(tmp_path, [msg("s2c", "response", pretty, id=3, method="tools/call", tool="t")])
    s = render.load(path)
    assert s.entries[1].message["result"]["content"][0]["text"] == "hi"
    assert render.timeline(s)[1].summary == "hi"
    assert render.export_json(s, render.unverified(s, "x"))["records"][1]["message"]["id"] == 3


def test_long_text_is_clipped_and_terminal_escapes_are_neutralised(tmp_path: Path) -> None:
    text = "\u001b]0;pwned\u0007\u001b[2J\u202e" + "x" * 500
    raw = json.dumps({"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": text}]}}).encode()
    path = write(tmp_path, [msg("s2c", "response", raw, id=3, method="tools/call", tool="t")])
    summary = render.timeline(render.load(path))[1].summary
    assert "\x1b" not in summary and "\x07" not in summary and "\u202e" not in summary
    assert summary.startswith("\\x1b]0;pwned\\x07\\x1b[2J\\u202exxx")
    assert re.search(r"x\.\.\. \(\+\d+ chars\)$", summary) and len(summary) < 230


def test_unreadable_lines_and_a_torn_tail_are_shown_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, CALL_STEPS, seal=False)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b"garbage\n"
    path.write_bytes(b"".join(lines) + b'{"rec":{"seq":5')
    s = render.load(path)
    rows = render.timeline(s)
    assert rows[2].kind == "unreadable" and rows[2].summary.startswith("unreadable line 3: not a transcript record")
    assert rows[-1].summary == "incomplete last line (15 bytes), as a crash mid-write leaves it"
    exported = render.export_json(s, render.unverified(s, "x"))["records"]
    assert exported[2] == {"line": 3, "unreadable": s.entries[2].problem}
    assert exported[-1] == {"line": 5, "unreadable": "incomplete last line (15 bytes)"}
    assert "garbage" not in json.dumps(exported)


def test_export_json_holds_every_record_with_its_message_parsed(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = write(tmp_path, CALL_STEPS, key=key)
    s = render.load(path)
    [result] = verify_paths([path], Trust([key.public_key()]))
    out = render.export_json(s, result)
    assert out["session"] == SID and out["verification"]["outcome"] == "sealed"
    assert [r["seq"] for r in out["records"]] == [1, 2, 3, 4, 5]
    assert out["records"][2]["message"] == json.loads(CALL)
    assert out["records"][3]["notes"] == MASKED and out["records"][0]["server"] == SERVER
    assert "message" not in out["records"][4]


HOSTILE = "<script>alert('x')</script>&<img src=x onerror=alert(1)>"


def test_html_escapes_everything_from_the_transcript(tmp_path: Path) -> None:
    raw = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": HOSTILE, "arguments": {"q": HOSTILE}}}).encode()
    steps: list[Step] = [
        msg("c2s", "request", raw, id=3, method="tools/call", tool=HOSTILE, notes=[{"guard": HOSTILE}]),
        ("error", {"event": HOSTILE, "reason": HOSTILE}, None),
        ("approval", {HOSTILE: HOSTILE}, None),
    ]
    s = render.load(write(tmp_path, steps))
    page = render.html_report(s, Result(s.path, "tampered", record=2, reason=HOSTILE, warnings=[HOSTILE]))
    assert "<script" not in page.lower() and "<img" not in page.lower() and "onerror=alert" in page
    assert html.escape("<script>alert(") in page
    assert "default-src 'none'" in page  # and even so, a page that escaped escaping could run nothing


def test_html_is_self_contained_with_the_verdict_on_top(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = write(tmp_path, CALL_STEPS, key=key)
    [result] = verify_paths([path], Trust([key.public_key()]))
    page = render.html_report(render.load(path), result)
    assert page.startswith("<!DOCTYPE html>")
    assert page.index('class="banner ok"') < page.index("<h2>Session</h2>") < page.index("<h2>Timeline</h2>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "<link" not in page
    assert "@import" not in page and "url(" not in page
    assert page.count("<details><summary>message JSON</summary>") == 3
    assert "masked: 2 x pan, 1 x cvv" in page and "claude-code 2.1.0" in page


@pytest.mark.parametrize(("outcome", "word"), [("sealed", "OK"), ("recovered", "OK"), ("incomplete", "INCOMPLETE"),
                                               ("tampered", "FAIL"), ("unverified", "UNVERIFIED")])
def test_verdict_words(tmp_path: Path, outcome: str, word: str) -> None:
    got, detail = render.verdict(Result(tmp_path, outcome, records=4, record=3 if outcome == "tampered" else None,
                                        reason="why"))
    assert got == word
    if word == "FAIL":
        assert detail == "tampered: record 3: why"


def test_resolve_by_id_prefix_path_and_latest(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    a = write(tmp_path, [], session="20260101T000000Z-aaaa0001", key=key)
    b = write(tmp_path, [], session="20260101T000000Z-aaab0002", key=key)
    assert render.session_files(tmp_path) == [a, b]  # the ledger is not a session
    assert render.resolve(tmp_path, "20260101T000000Z-aaaa0001") == a
    assert render.resolve(tmp_path, "20260101T000000Z-aaab") == b
    assert render.resolve(tmp_path, str(a)) == a
    assert render.resolve(tmp_path, "latest") == b  # the newest genesis
    with pytest.raises(UsageError, match="matches 2 sessions"):
        render.resolve(tmp_path, "20260101T000000Z-aa")
    with pytest.raises(UsageError, match="no session 'zzz'"):
        render.resolve(tmp_path, "zzz")
    with pytest.raises(UsageError, match="host ledger"):
        render.resolve(tmp_path, str(tmp_path / "ledger.jsonl"))
    with pytest.raises(UsageError, match="no sessions"):
        render.resolve(tmp_path / "empty", "latest")
