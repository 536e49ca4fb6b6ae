"""Shipping through a real `relay run`: a session reaches a real loopback collector (with its acks recorded in the
transcript), a session recorded while the collector was down is shipped exactly once at the next start, and
`collector.required` withholds messages once the collector lags behind `max_lag`."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.collector import running_collector
from tests.support.processes import PY, RELAY, SERVERS, RawClient, relay_env
from tests.support.transcripts import records

SERVER = [PY, str(SERVERS / "raw_stdio_server.py")]


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"collector:\n  url: {url}\n  interval: 100ms\n  auth: {{bearer_env: COLLECTOR_TOKEN}}\n{extra}")
    return path


def sessions(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "state" / "relay" / "transcripts"
    return sorted((p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"), key=lambda p: p.name)


def session(tmp_path: Path, cfg: Path) -> int:
    env = relay_env(tmp_path, COLLECTOR_TOKEN="s3cret-token")
    with RawClient([*RELAY, "--config", str(cfg), "run", "--", *SERVER], env=env) as c:
        c.initialize()
        c.request("tools/call", {"name": "echo", "arguments": {"text": "shipped"}})
        time.sleep(0.4)  # a few shipping rounds while the session runs
        code = c.close()
        assert "s3cret-token" not in c.stderr
        return code


def test_a_session_reaches_the_collector_with_its_acks_recorded(tmp_path: Path) -> None:
    with running_collector(token="s3cret-token") as collector:
        assert session(tmp_path, config(tmp_path, collector.url)) == 0
        [path] = sessions(tmp_path)
        local = path.read_bytes().splitlines(keepends=True)
        assert collector.lines(path.stem) == local  # every record, the seal included, byte for byte
        acks = [r for r in records(path) if r["type"] == "ack"]
        assert acks and all(a["collector"] == collector.url for a in acks)
        assert max(a["acked"] for a in acks) >= 5  # initialize, initialized, the call and its answer
        assert all(n == 1 for n in collector.stored.values())


def test_a_session_recorded_while_the_collector_was_down_is_shipped_once_at_the_next_start(tmp_path: Path) -> None:
    with running_collector(token="s3cret-token") as collector:
        url = collector.url
        collector.stop()  # down for the whole first session
        cfg = config(tmp_path, url)
        assert session(tmp_path, cfg) == 0
        [first] = sessions(tmp_path)
        assert collector.lines(first.stem) == []
        collector.start()  # back
        assert session(tmp_path, cfg) == 0  # the next start ships the backlog while its own session runs
        for path in sessions(tmp_path):
            assert collector.lines(path.stem) == path.read_bytes().splitlines(keepends=True)
        assert all(n == 1 for n in collector.stored.values())


def test_required_collector_that_lags_fails_closed(tmp_path: Path) -> None:
    with running_collector() as collector:
        url = collector.url
        collector.stop()
        cfg = config(tmp_path, url, "  required: true\n  max_lag: 300ms\n")
        with RawClient([*RELAY, "--config", str(cfg), "run", "--", *SERVER], env=relay_env(tmp_path)) as c:
            c.initialize()
            time.sleep(1.0)  # the initialize records wait unacknowledged past max_lag
            answer = c.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
            assert "error" in answer and "collector" in answer["error"]["message"]
            c.close()


def test_transcripts_ship_drains_the_backlog(tmp_path: Path) -> None:
    import subprocess

    with running_collector(token="s3cret-token") as collector:
        url = collector.url
        collector.stop()
        cfg = config(tmp_path, url)
        assert session(tmp_path, cfg) == 0
        env = relay_env(tmp_path, COLLECTOR_TOKEN="s3cret-token")
        ship = [*RELAY, "--config", str(cfg), "transcripts", "ship", "--timeout", "2"]
        down = subprocess.run(ship, env=env, capture_output=True, text=True)
        assert down.returncode == 1 and "FAIL:" in down.stderr
        collector.start()
        up = subprocess.run(ship, env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        [path] = sessions(tmp_path)
        assert f"OK: {path.stem}" in up.stderr
        assert collector.lines(path.stem) == path.read_bytes().splitlines(keepends=True)
        assert "s3cret-token" not in up.stderr + down.stderr
