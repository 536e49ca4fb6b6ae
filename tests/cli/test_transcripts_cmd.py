"""`relay transcripts list|show|export` on real transcripts from `relay demo`: stdout only for what was asked,
verification on top, untrusted content escaped, sessions found by id, prefix, path or `latest`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.masking.detect import scan
from relay.transcript.hostkey import HostKeys, public_pem
from relay.transcript.writer import SessionWriter
from tests.support.processes import RELAY, relay_env

TRANSCRIPTS = [*RELAY, "transcripts"]
def clear_pan(text: str) -> bool:
    """A card number in clear (relay's own detector: hashes and ids with long digit runs are not cards)."""
    return any(f.kind == "pan" for f in scan(text))


@dataclass(frozen=True)
class Demo:
    home: Path  # what relay_env points XDG_* at
    dir: Path  # the demo's transcript directory
    key: Path  # the demo host key's public PEM
    sessions: list[str]  # oldest first


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """Two `relay demo` runs: two sealed sessions signed by the demo's host key."""
    home = tmp_path_factory.mktemp("demo")
    for _ in range(2):
        out = subprocess.run([*RELAY, "demo"], env=relay_env(home), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    state = home / "state" / "relay"
    pem = home / "demo.pem"
    pem.write_text(public_pem(HostKeys("file", state / "demo-keys" / "host-ed25519.pem").load().public_key()))
    directory = state / "demo-transcripts"
    files = [p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"]
    # In start order (the genesis timestamp): two demos can start within the second that names them.
    sessions = [p.stem for p in sorted(files, key=lambda p: json.loads(p.read_bytes().split(b"\n", 1)[0])["rec"]["ts"])]
    assert len(sessions) == 2
    return Demo(home, directory, pem, sessions)


def run(demo: Demo, *args: str, directory: Path | None = None, key: bool = True) -> subprocess.CompletedProcess[str]:
    extra = ["--dir", str(directory or demo.dir)] + (["--key", str(demo.key)] if key else [])
    return subprocess.run([*TRANSCRIPTS, *args, *extra], env=relay_env(demo.home), capture_output=True, text=True,
                          timeout=60)


def copy(demo: Demo, tmp_path: Path) -> Path:
    target = tmp_path / "transcripts"
    shutil.copytree(demo.dir, target)
    return target


def test_list_shows_one_line_per_session(demo: Demo) -> None:
    out = run(demo, "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[0].split() == ["SESSION", "STARTED", "(UTC)", "SERVER", "RECORDS", "TOOL", "CALLS", "OUTCOME"]
    for session, line in zip(demo.sessions, lines[1:], strict=True):
        cells = line.split()
        assert cells[0] == session and cells[3:] == ["demo-payments", "17", "4", "sealed"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", cells[1]) and re.fullmatch(r"\d\d:\d\d:\d\d", cells[2])


def test_list_json_on_stdout(demo: Demo) -> None:
    out = run(demo, "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["session"] for r in rows] == demo.sessions
    assert {(r["server"], r["records"], r["tool_calls"], r["outcome"]) for r in rows} == {
        ("demo-payments", 17, 4, "sealed")}
    assert rows[0]["start"].endswith("Z") and rows[0]["reason"] is None


def test_without_a_host_key_the_outcome_is_unverified(demo: Demo) -> None:
    out = run(demo, "list", key=False)
    assert out.returncode == 0, out.stderr
    assert all(line.endswith("unverified (no host key)") for line in out.stderr.splitlines()[1:])
    out = run(demo, "show", "latest", key=False)
    assert out.returncode == 0 and out.stderr.startswith("UNVERIFIED: no host key")


def test_show_is_a_readable_timeline_on_stderr(demo: Demo) -> None:
    out = run(demo, "show", demo.sessions[0])
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    text = out.stderr
    assert text.startswith("OK: sealed, 17 records")
    assert f"session: {demo.sessions[0]}" in text and "client: relay-demo-agent" in text
    assert "server: demo-payments (stdio" in text
    assert re.search(r"\+\d+\.\d{3}s  agent -> server  tools/call lookup_order  \{\"order_id\": \"ord_1001\"\}",
                     text)
    assert re.search(r"server -> agent  tools/call lookup_order \(response\)  Order ord_1001", text)
    assert "masked: 3 x pan" in text and "masked: 1 x pan, 1 x cvv" in text
    assert "sealed: 17 records, reason client_closed" in text
    assert not clear_pan(text)  # transcripts are masked; show adds nothing


def test_sessions_by_prefix_path_and_latest(demo: Demo) -> None:
    first, latest = demo.sessions
    assert f"session: {latest}" in run(demo, "show", "latest").stderr
    assert f"session: {first}" in run(demo, "show", first[:-3]).stderr
    assert f"session: {first}" in run(demo, "show", str(demo.dir / f"{first}.jsonl")).stderr
    ambiguous = run(demo, "show", first[:8])
    assert ambiguous.returncode == 2 and "matches 2 sessions" in ambiguous.stderr
    unknown = run(demo, "export", "nope")
    assert unknown.returncode == 2 and "no session 'nope'" in unknown.stderr and unknown.stdout == ""


def test_export_json(demo: Demo) -> None:
    out = run(demo, "export", demo.sessions[1], "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["session"] == demo.sessions[1]
    assert doc["verification"]["outcome"] == "sealed" and doc["verification"]["records"] == 17
    records = doc["records"]
    assert [r["seq"] for r in records] == list(range(1, 18))
    call = next(r for r in records if r.get("tool") == "lookup_order" and r["dir"] == "c2s")
    assert call["message"]["params"]["arguments"] == {"order_id": "ord_1001"}  # the message, parsed
    assert records[-1]["type"] == "seal"
    assert not clear_pan(out.stdout)


def test_export_html_report(demo: Demo, tmp_path: Path) -> None:
    out = run(demo, "export", "latest", "--format", "html")
    assert out.returncode == 0, out.stderr
    page = out.stdout
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.index('class="banner ok"') < page.index("<h2>Timeline</h2>")
    assert "<script" not in page and "<link" not in page and not re.search(r"(src|href)=\"?(https?:)?//", page)
    assert page.count("<details><summary>message JSON</summary>") == 13
    assert "masked: 3 x pan" in page
    written = tmp_path / "report.html"
    out = run(demo, "export", "latest", "--format", "html", "--output", str(written))
    assert out.returncode == 0 and out.stdout == "" and written.read_text() == page


def test_a_tampered_session_still_renders_with_the_fail_banner(demo: Demo, tmp_path: Path) -> None:
    directory = copy(demo, tmp_path)
    path = directory / f"{demo.sessions[0]}.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[6] = lines[6].replace(b"ord_1001", b"ord_1002")  # the agent's request, edited after the fact
    lines[8] = b"not a record\n"
    path.write_bytes(b"".join(lines))
    show = run(demo, "show", demo.sessions[0], directory=directory)
    assert show.returncode == 0, show.stderr
    assert show.stderr.startswith("FAIL: tampered: record 7: record 7 was modified")  # the first bad record
    assert "unreadable line 9: not a transcript record" in show.stderr
    assert '{"order_id": "ord_1002"}' in show.stderr  # shown as the file has it, next to the verdict
    page = run(demo, "export", demo.sessions[0], "--format", "html", directory=directory).stdout
    assert 'class="banner fail"' in page and ">FAIL<" in page and 'href="#r7"' in page
    listed = run(demo, "list", directory=directory).stderr
    assert f"{demo.sessions[0]}" in listed and "tampered: record 7:" in listed


def test_a_deleted_session_is_listed_as_missing(demo: Demo, tmp_path: Path) -> None:
    directory = copy(demo, tmp_path)
    (directory / f"{demo.sessions[0]}.jsonl").unlink()
    rows = json.loads(run(demo, "list", "--json", directory=directory).stdout)
    missing = next(r for r in rows if r["session"] == demo.sessions[0])
    assert missing["outcome"] == "tampered" and "missing" in missing["reason"]


def test_hostile_content_is_escaped_in_html_and_neutralised_on_the_terminal(demo: Demo, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "host.pem"
    pem.write_text(public_pem(key.public_key()))
    session = "20260101T000000Z-e5c4e5c4"
    w = SessionWriter(tmp_path, session, {"name": "<b>srv</b>", "transport": "stdio", "command": "srv"}, key)
    hostile = "<script>alert(1)</script>\u001b[31m"
    w.write("message", {"dir": "s2c", "kind": "response", "id": 1, "method": "tools/call", "tool": "t"},
            json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": hostile}]}})
            .encode())
    w.seal("client_closed", key)
    env = relay_env(demo.home)
    page = subprocess.run([*TRANSCRIPTS, "export", session, "--format", "html", "--dir", str(tmp_path), "--key",
                           str(pem)], env=env, capture_output=True, text=True, timeout=60)
    assert page.returncode == 0, page.stderr
    assert "<script" not in page.stdout and "<b>" not in page.stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.stdout and "&lt;b&gt;srv&lt;/b&gt;" in page.stdout
    assert 'class="banner ok"' in page.stdout
    show = subprocess.run([*TRANSCRIPTS, "show", session, "--dir", str(tmp_path), "--key", str(pem)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert "\x1b" not in show.stderr and "<script>alert(1)</script>\\x1b[31m" in show.stderr
