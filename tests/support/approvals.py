"""What the approval tests share: the demo payments server as the upstream, and driving a relay session and the
`relay approvals` / `approve` / `deny` commands from a test."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.processes import PY, RELAY, RawClient, relay_env
from tests.support.transcripts import records

DEMO = [PY, "-m", "relay.demo.server", "--quiet"]
PAN = "4111111111111111"
REFUND = {"order_id": "ord_1001", "amount": 5, "reason": f"customer asked (card {PAN})"}


def call(c: RawClient, id_: int, tool: str, arguments: dict[str, Any], progress: str | None = None) -> None:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if progress:
        params["_meta"] = {"progressToken": progress}
    c.send({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params})


def answer(c: RawClient, id_: int, seen: list[Any] | None = None, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = c.recv(max(0.1, deadline - time.monotonic()))
        if got.get("id") == id_ and "method" not in got:
            return got
        if seen is not None:
            seen.append(got)


def relay_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELAY, *args], env=relay_env(tmp_path), capture_output=True, text=True, timeout=30)


def pending(tmp_path: Path, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        out = relay_cli(tmp_path, "approvals", "list", "--json")
        assert out.returncode == 0, out.stderr
        items: list[dict[str, Any]] = json.loads(out.stdout)
        if len(items) >= count:
            return items
        assert time.monotonic() < deadline, f"no pending approval; relay said: {out.stderr}"
        time.sleep(0.2)


def transcript(tmp_path: Path) -> list[dict[str, Any]]:
    directory = tmp_path / "state" / "relay" / "transcripts"
    [path] = [p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"]
    return records(path)
