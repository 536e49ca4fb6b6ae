"""relay.transcript.recovery: a session whose relay died is ended by the next start with a host-signed recovery
record, its torn tail cut and accounted for; live and damaged sessions are left alone. Includes kill -9 of a real
relay process."""

from __future__ import annotations

import hashlib
import signal
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.transcript.recovery import recover
from relay.transcript.verify import Trust, verify_paths
from relay.transcript.writer import SessionWriter
from tests.support.processes import PY, RELAY, SERVERS, RawClient, relay_env
from tests.support.transcripts import SERVER, records

MSG = b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}'


def crashed(directory: Path, key: Ed25519PrivateKey, session: str = "s", messages: int = 3) -> Path:
    """A session whose relay died: records written, never sealed, its lock released as at process death."""
    w = SessionWriter(directory, session, SERVER, key)
    for _ in range(messages):
        w.write("message", {"dir": "s2c", "kind": "notification"}, MSG)
    w._abandon()  # what the OS does to a killed process: descriptor closed, lock gone, key lost
    return w.path


def outcome(directory: Path, key: Ed25519PrivateKey) -> tuple[str, ...]:
    return tuple(r.outcome for r in verify_paths([directory], Trust([key.public_key()])))


def test_a_crashed_session_is_incomplete_until_recovered(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = crashed(tmp_path, key)
    assert outcome(tmp_path, key) == ("incomplete",)
    assert recover(tmp_path, key) == ["s"]
    recs = records(path)
    assert recs[-1] | {"ts": None, "prev": None, "pid": None, "host_key": None} == {
        "seq": 5, "ts": None, "prev": None, "type": "recovery", "last_seq": 4, "torn_bytes": 0, "reason": "crash",
        "pid": None, "host_key": None}
    assert recs[-1]["host_key"] == recs[0]["host_key"]  # signed by the host key, which it names
    [result] = verify_paths([tmp_path], Trust([key.public_key()]))
    assert (result.outcome, result.exit_code) == ("recovered", 0)
    assert any("crash" in w for w in result.warnings)
    assert [(r["type"], r["session"]) for r in records(tmp_path / "ledger.jsonl")] == [("open", "s"), ("recovery", "s")]
    assert recover(tmp_path, key) == []  # once


def test_a_torn_last_line_is_cut_and_accounted_for(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = crashed(tmp_path, key)
    torn = b'{"rec":{"seq":5,"ts":"2026-'
    with path.open("ab") as f:
        f.write(torn)
    [result] = verify_paths([path], Trust([key.public_key()]))
    assert result.outcome == "incomplete" and any("incomplete last line" in w for w in result.warnings)
    recover(tmp_path, key)
    last = records(path)[-1]
    assert (last["type"], last["torn_bytes"], last["torn_sha256"]) == ("recovery", len(torn),
                                                                       hashlib.sha256(torn).hexdigest())
    assert outcome(tmp_path, key) == ("recovered",)


def test_a_live_session_is_not_touched(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    w = SessionWriter(tmp_path, "live", SERVER, key)
    before = w.path.read_bytes()
    assert recover(tmp_path, key) == []  # its writer holds the lock
    assert w.path.read_bytes() == before
    w.seal("client_closed", key)
    assert outcome(tmp_path, key) == ("sealed",)


def test_a_damaged_session_is_left_for_verify(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = crashed(tmp_path, key)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))  # a record removed from the middle
    before = path.read_bytes()
    assert recover(tmp_path, key) == []
    assert path.read_bytes() == before  # evidence kept as found
    assert outcome(tmp_path, key) == ("tampered",)


def test_a_session_sealed_on_disk_but_not_in_the_ledger_gets_its_ledger_entry(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    w = SessionWriter(tmp_path, "s", SERVER, key)
    w.write("seal", {"records": 2, "reason": "client_closed"})  # the relay died right after writing its seal
    w._abandon()
    assert recover(tmp_path, key) == []
    assert [r["type"] for r in records(tmp_path / "ledger.jsonl")] == ["open", "seal"]
    assert outcome(tmp_path, key) == ("sealed",)


def test_kill_9_of_a_real_relay_then_the_next_start_recovers(tmp_path: Path) -> None:
    env = relay_env(tmp_path)
    directory = tmp_path / "state" / "relay" / "transcripts"
    server = [PY, str(SERVERS / "raw_stdio_server.py")]
    with RawClient([*RELAY, "run", "--", *server], env=env) as c:
        c.initialize()
        c.request("tools/call", {"name": "echo", "arguments": {"text": "before the crash"}})
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait(10)
    verify = [*RELAY, "verify", str(directory)]
    first = subprocess.run(verify, env=env, capture_output=True, text=True)
    assert first.returncode == 3, first.stderr
    assert "INCOMPLETE" in first.stderr
    with RawClient([*RELAY, "run", "--", *server], env=env) as c:  # the next start, a new session
        c.initialize()
        assert c.close() == 0
    second = subprocess.run(verify, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("OK:") == 2 and "recovered" in second.stderr and "sealed" in second.stderr
    host_key = tmp_path / "state" / "relay" / "keys" / "host-ed25519.pem"
    assert host_key.stat().st_mode & 0o777 == 0o600


def test_sigterm_seals_the_session(tmp_path: Path) -> None:
    env = relay_env(tmp_path)
    directory = tmp_path / "state" / "relay" / "transcripts"
    with RawClient([*RELAY, "run", "--", PY, str(SERVERS / "raw_stdio_server.py")], env=env) as c:
        c.initialize()
        c.proc.send_signal(signal.SIGTERM)
        c.proc.wait(10)
    [path] = [p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"]
    assert records(path)[-1] | {"ts": None, "prev": None, "seq": None, "records": None} == {
        "ts": None, "prev": None, "seq": None, "records": None, "type": "seal", "reason": "signal"}
