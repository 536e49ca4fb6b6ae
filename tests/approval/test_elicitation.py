"""The elicitation channel end to end: the official `mcp` SDK client in front of `relay run`, the demo payments
server behind it. relay asks the client (`elicitation/create`) and the answer releases or denies the call; the
transcript marks it as self-approval. A client without elicitation, a dismissed question and an unreadable answer
deny (no other channel); a decision on another channel withdraws the question from the client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support.approvals import DEMO, PAN, REFUND, answer, call, pending, relay_cli, transcript
from tests.support.processes import RELAY, RawClient, free_port, relay_env

POLICY = """\
approvals:
  timeout: 20s
  rules:
    - match: {{tool: "refund_*"}}
      action: require_approval
      reason: refunds need a person
      channels: [{channels}]
"""


def configure(tmp_path: Path, channels: str = "elicitation") -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(POLICY.format(channels=channels))
    return cfg


def relayed(tmp_path: Path, channels: str = "elicitation") -> Any:
    cfg = configure(tmp_path, channels)
    params = StdioServerParameters(command=sys.executable, args=[*RELAY[1:], "--config", str(cfg), "run", "--", *DEMO],
                                   env=relay_env(tmp_path))
    return stdio_client(params, errlog=(tmp_path / "relay-stderr.log").open("w"))


def listening(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [*RELAY, "--config", str(configure(tmp_path)), "run", "--listen", f"127.0.0.1:{port}", "--", *DEMO]
    return subprocess.Popen(argv, env=relay_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "relay.log").open("wb")), port


def approvals(tmp_path: Path) -> list[dict[str, Any]]:
    return [r for r in transcript(tmp_path) if r["type"] == "approval"]


def text_of(result: types.CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.anyio
async def test_the_client_approves_and_the_call_runs(tmp_path: Path) -> None:
    asked: list[types.ElicitRequestParams] = []

    async def yes(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"approve": True, "reason": "customer on the phone"})

    with anyio.fail_after(60):
        async with Client(relayed(tmp_path), elicitation_callback=yes) as client:
            result = await client.call_tool("refund_payment", REFUND)
    assert not result.is_error, text_of(result)
    [question] = asked
    assert "refund_payment" in question.message and "self-approval" in question.message
    assert "refunds need a person" in question.message
    assert PAN not in question.message  # the question shows masked arguments only
    assert question.requested_schema["properties"]["approve"]["type"] == "boolean"
    requested, approved = approvals(tmp_path)
    assert requested["decision"] == "requested" and requested["channels"] == ["elicitation"]
    assert approved["decision"] == "approved" and approved["channel"] == "elicitation"
    assert approved["self_approval"] is True and approved["reason"] == "customer on the phone"


@pytest.mark.anyio
@pytest.mark.parametrize(("reply", "expect"), [
    ({"action": "decline"}, "declined in the MCP client"),
    ({"action": "accept", "content": {"approve": False, "reason": "wrong order"}}, "wrong order"),
])
async def test_the_client_denies(tmp_path: Path, reply: dict[str, Any], expect: str) -> None:
    async def no(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(**reply)

    with anyio.fail_after(60):
        async with Client(relayed(tmp_path), elicitation_callback=no) as client:
            result = await client.call_tool("refund_payment", REFUND)
            assert (await client.call_tool("lookup_order", {"order_id": "ord_1001"})).is_error is False
    assert result.is_error and text_of(result).startswith("Denied by ") and expect in text_of(result)
    denied = approvals(tmp_path)[-1]
    assert denied["decision"] == "denied" and denied["self_approval"] is True and denied["channel"] == "elicitation"


@pytest.mark.anyio
async def test_a_dismissed_question_denies_when_no_channel_is_left(tmp_path: Path) -> None:
    async def dismiss(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="cancel")

    with anyio.fail_after(60):
        async with Client(relayed(tmp_path), elicitation_callback=dismiss) as client:
            result = await client.call_tool("refund_payment", REFUND)
    assert result.is_error and "dismissed" in text_of(result)
    assert approvals(tmp_path)[-1]["decision"] == "denied"


@pytest.mark.anyio
async def test_a_client_without_elicitation_is_denied_at_once(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with Client(relayed(tmp_path)) as client:  # no callback: the SDK declares no elicitation
            result = await client.call_tool("refund_payment", REFUND)
    assert result.is_error and "does not support elicitation" in text_of(result)


def test_an_unreadable_answer_denies(tmp_path: Path) -> None:
    cfg = configure(tmp_path)
    with RawClient([*RELAY, "--config", str(cfg), "run", "--", *DEMO], env=relay_env(tmp_path)) as c:
        c.initialize(capabilities={"elicitation": {}})
        call(c, 7, "refund_payment", REFUND)
        ask = c.recv()
        assert ask["method"] == "elicitation/create" and str(ask["id"]).startswith("relay-")
        c.send({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "maybe"}})
        result = answer(c, 7)
        assert result["result"]["isError"] and "cannot read" in result["result"]["content"][0]["text"]
        assert c.close() == 0


def test_a_decision_elsewhere_withdraws_the_question(tmp_path: Path) -> None:
    """The question is open in the client; the person approves with `relay approve` instead: relay tells the
    client the question is cancelled, and the client's late answer is ignored (not sent to the server)."""
    cfg = configure(tmp_path, "elicitation, local")
    with RawClient([*RELAY, "--config", str(cfg), "run", "--", *DEMO], env=relay_env(tmp_path)) as c:
        c.initialize(capabilities={"elicitation": {"form": {}}})
        call(c, 7, "refund_payment", REFUND)
        ask = c.recv()
        assert ask["method"] == "elicitation/create"
        [item] = pending(tmp_path)
        assert relay_cli(tmp_path, "approve", item["id"]).returncode == 0
        seen: list[Any] = []
        result = answer(c, 7, seen)
        assert not result["result"].get("isError"), result
        cancelled = [m for m in seen if m.get("method") == "notifications/cancelled"]
        assert cancelled and cancelled[0]["params"]["requestId"] == ask["id"]
        c.send({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "decline"}})  # too late: dropped
        assert "result" in c.request("tools/call", {"name": "lookup_order", "arguments": {"order_id": "ord_1001"}})
        assert c.close() == 0
    decided = approvals(tmp_path)[-1]
    assert decided["decision"] == "approved" and decided["channel"] == "local" and "self_approval" not in decided
    assert json.dumps(decided).count(PAN) == 0


@pytest.mark.anyio
async def test_over_listen_the_question_reaches_the_http_client(tmp_path: Path) -> None:
    """With `--listen` the question travels on the held call's own response stream (Streamable HTTP)."""
    from tests.support.processes import stop, wait_port

    proc, port = listening(tmp_path)
    asked: list[str] = []

    async def yes(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    try:
        wait_port(port)
        with anyio.fail_after(60):
            async with Client(f"http://127.0.0.1:{port}/mcp", elicitation_callback=yes) as client:
                result = await client.call_tool("refund_payment", REFUND)
    finally:
        stop(proc)
    assert not result.is_error, text_of(result)
    assert len(asked) == 1 and "refund_payment" in asked[0]
    assert "Traceback" not in (tmp_path / "relay.log").read_text()
