"""The commands as a person or a bot runs them: exit codes, stdout kept for results, clear stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import PY, RELAY, SERVERS, relay_env

RAW = [PY, str(SERVERS / "raw_stdio_server.py")]
DEMO = [PY, "-m", "relay.demo.server", "--quiet"]


def run(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELAY, *args], env=relay_env(tmp_path), input=stdin, capture_output=True, text=True,
                          timeout=60)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "relay" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_version(tmp_path: Path) -> None:
    out = run(tmp_path, "--version")
    assert out.returncode == 0 and out.stderr.startswith("relay 0.") and out.stdout == ""


def test_call_prints_the_result_json_on_stdout(tmp_path: Path) -> None:
    out = run(tmp_path, "call", "lookup_order", "--arg", "order_id=ord_1001", "--", *DEMO)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["structuredContent"]["order_id"] == "ord_1001"


def test_call_types_arguments_by_the_tool_schema(tmp_path: Path) -> None:
    # list_orders takes an integer limit: "2" must arrive as 2, or the server refuses it.
    out = run(tmp_path, "call", "list_orders", "--arg", "limit=2", "--", *DEMO)
    assert out.returncode == 0, out.stderr
    assert "Showing 2 of" in json.loads(out.stdout)["content"][0]["text"]


def test_call_of_a_named_server_from_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, f"servers:\n  payments:\n    command: {json.dumps(DEMO)}\n")
    out = run(tmp_path, "call", "payments", "get_customer", "--json", '{"customer_id": "cus_001"}')
    assert out.returncode == 0, out.stderr
    assert "cus_001" in json.loads(out.stdout)["content"][0]["text"]


def test_call_exits_1_when_the_tool_reports_an_error(tmp_path: Path) -> None:
    out = run(tmp_path, "call", "lookup_order", "--arg", "order_id=ord_0000", "--", *DEMO)
    assert out.returncode == 1
    assert json.loads(out.stdout)["isError"] is True
    assert "reported an error" in out.stderr


def test_call_exits_1_when_the_call_fails(tmp_path: Path) -> None:
    out = run(tmp_path, "call", "no_such_tool", "--arg", "x=1", "--", *RAW)
    assert out.returncode == 1
    assert out.stdout == ""
    assert "no tool named 'no_such_tool'" in out.stderr


def test_call_with_bad_usage_exits_2(tmp_path: Path) -> None:
    out = run(tmp_path, "call", "echo", "--arg", "oops", "--", *RAW)
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
    out = run(tmp_path, "call", "echo", "--json", "[1]", "--", *RAW)
    assert out.returncode == 2 and "JSON object" in out.stderr


def test_run_with_an_unknown_server_name_suggests_the_nearest(tmp_path: Path) -> None:
    write_config(tmp_path, "servers:\n  payments:\n    url: http://127.0.0.1:1/mcp\n")
    out = run(tmp_path, "run", "paymnets")
    assert out.returncode == 2
    assert "no server named 'paymnets'" in out.stderr and "did you mean 'payments'" in out.stderr


def test_config_check_names_file_line_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "servers:\n  payments:\n    url: http://x/mcp\n    transprt: sse\n")
    out = run(tmp_path, "config", "check")
    assert out.returncode == 2
    assert f"{path}:4: servers.payments.transprt: unknown key" in out.stderr.replace("\n", "")
    assert "did you mean 'transport'" in out.stderr


def test_config_check_accepts_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    out = run(tmp_path, "--config", str(example), "config", "check")
    assert out.returncode == 0, out.stderr
    assert "payments" in out.stderr


def test_json_logs_are_json_lines_on_stderr(tmp_path: Path) -> None:
    out = run(tmp_path, "--log-level", "info", "--log-format", "json", "run", "--", *RAW, stdin="{oops\n")
    assert out.returncode == 0
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert any(entry["level"] == "warning" and "invalid JSON" in entry["message"] for entry in lines)
    assert json.loads(out.stdout)["error"]["code"] == -32700


def test_demo_runs_end_to_end_and_leaves_a_private_transcript(tmp_path: Path) -> None:
    out = run(tmp_path, "demo")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # stdout belongs to the protocol, even in the demo
    assert "lookup_order" in out.stderr and "what the agent saw" in out.stderr
    transcripts = [p for p in (tmp_path / "state" / "relay" / "demo-transcripts").glob("*.jsonl")
                   if p.name != "ledger.jsonl"]
    assert len(transcripts) == 1 and transcripts[0].stat().st_mode & 0o777 == 0o600
    assert "relay verify: OK sealed" in out.stderr
    assert "Approval recorded: refund_payment approved by" in out.stderr  # the refund waited for a person


def test_python_dash_m_relay_works(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "relay", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "run" in out.stdout
