"""`relay run -- COMMAND`: a real relay process in front of a real stdio server that writes exact bytes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.processes import PY, RELAY, SERVERS, RawClient, relay_env
from tests.support.transcripts import records

RAW = [PY, str(SERVERS / "raw_stdio_server.py")]


def relay(tmp_path: Path, *args: str) -> RawClient:
    return RawClient([*RELAY, "run", *args, "--", *RAW], env=relay_env(tmp_path))


def call(client: RawClient, tool: str, **arguments: object) -> dict:
    return client.request("tools/call", {"name": tool, "arguments": arguments})


def test_requests_and_responses_pass_byte_for_byte(tmp_path: Path) -> None:
    with RawClient(RAW) as straight, relay(tmp_path) as relayed:
        for c in (straight, relayed):
            c.initialize()
        # Same request bytes in, same response bytes out.
        for c in (straight, relayed):
            c.send_raw(b'{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"h\\u00e9llo"}}}\n')
        assert straight.recv_raw() == relayed.recv_raw()
        assert relayed.close() == 0


def test_malformed_and_non_utf8_from_the_server_do_not_end_the_session(tmp_path: Path) -> None:
    with relay(tmp_path) as c:
        c.initialize()
        bad = (b"{not json\n" + b"\xff\xfe\n").hex()
        resp = call(c, "reply_bytes", hex=bad, then="response")
        assert resp["result"]["content"][0]["text"] == "after bytes", resp
        # The client is told what was dropped, through MCP's logging notification.
        notes = [m["params"]["data"] for m in c.other if m.get("method") == "notifications/message"]
        assert len(notes) == 2
        assert "invalid JSON" in notes[0] and "UTF-8" in notes[1]
        assert call(c, "echo", text="still here")["result"]["content"][0]["text"] == "still here"
        assert c.close() == 0


def test_malformed_and_non_utf8_from_the_client_get_parse_errors(tmp_path: Path) -> None:
    with relay(tmp_path) as c:
        c.initialize()
        c.send_raw(b"{oops\n")
        err = c.recv()
        assert err["id"] is None and err["error"]["code"] == -32700
        c.send_raw(b'{"jsonrpc":"2.0","id":5,"method":"ping","x":"\xff"}\n')
        err = c.recv()
        assert err["error"]["code"] == -32700 and "UTF-8" in err["error"]["message"]
        assert c.request("ping")["result"] == {}
        assert c.close() == 0


def test_a_server_message_over_the_limit_is_dropped_and_the_request_answered(tmp_path: Path) -> None:
    with relay(tmp_path, "--max-message-bytes", "64KiB") as c:
        c.initialize()
        resp = call(c, "huge", bytes=200_000)
        assert resp["error"]["code"] == -32001
        assert "larger than the limit" in resp["error"]["message"]
        # Memory stayed bounded and the session goes on.
        assert call(c, "echo", text="after")["result"]["content"][0]["text"] == "after"
        assert c.close() == 0


def test_a_client_message_over_the_limit_gets_an_error_with_its_id(tmp_path: Path) -> None:
    with relay(tmp_path, "--max-message-bytes", "64KiB") as c:
        c.initialize()
        c.send({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "x" * 100_000}}})
        err = c.recv()
        assert err["id"] == 77 and err["error"]["code"] == -32001
        assert c.request("ping")["result"] == {}
        assert c.close() == 0


def test_a_server_dying_mid_call_fails_pending_requests_and_exits_non_zero(tmp_path: Path) -> None:
    with relay(tmp_path) as c:
        c.initialize()
        c.send({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "reply_bytes", "arguments": {"hex": ""}}})  # left unanswered
        c.send({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {"name": "die", "arguments": {"code": 7}}})
        errors = {m["id"]: m["error"] for m in (c.recv(), c.recv())}
        assert set(errors) == {41, 42}
        for e in errors.values():
            assert "exited with code 7" in e["message"]
        assert c.close() == 4
        last = c.stderr.strip().splitlines()[-1]
        assert "exited with code 7" in last


def test_transcript_records_every_message_before_forwarding(tmp_path: Path) -> None:
    with relay(tmp_path) as c:
        c.initialize()
        call(c, "echo", text="recorded")
        assert c.close() == 0
    directory = tmp_path / "state" / "relay" / "transcripts"
    files = [p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"]
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    assert files[0].parent.stat().st_mode & 0o777 == 0o700
    assert (directory / "ledger.jsonl").stat().st_mode & 0o777 == 0o600
    recs = records(files[0])
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    kinds = [(r.get("dir"), r.get("method")) for r in recs if r["type"] == "message"]
    assert kinds == [("c2s", "initialize"), ("s2c", "initialize"), ("c2s", "notifications/initialized"),
                     ("c2s", "tools/call"), ("s2c", "tools/call")]
    assert recs[0]["type"] == "genesis" and recs[-1]["type"] == "seal"
    assert recs[-1]["reason"] == "client_closed"
    assert subprocess.run([*RELAY, "verify", str(directory)], env=relay_env(tmp_path)).returncode == 0


def test_a_command_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    with RawClient([*RELAY, "run", "--", "/nonexistent/server"], env=relay_env(tmp_path)) as c:
        c.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert c.close() == 4
        assert "cannot start server" in c.stderr and "/nonexistent/server" in c.stderr


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26"])
def test_batches_pass_where_the_revision_allows(tmp_path: Path, version: str) -> None:
    demo = [*RELAY, "run", "--", PY, "-m", "relay.demo.server", "--quiet"]
    with RawClient(demo, env=relay_env(tmp_path)) as c:
        c.initialize(version)
        c.send([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}])
        got = c.recv()
        items = got if isinstance(got, list) else [got, c.recv()]
        assert sorted(m["id"] for m in items) == [1, 2]
        assert c.close() == 0
