"""`relay run --listen`: local clients over Streamable HTTP and legacy SSE, guarded like a local server must be."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, types
from mcp.client.sse import sse_client

from tests.support.processes import RELAY, SERVERS, free_port, relay_env, stop, wait_port

SDK_STDIO = [sys.executable, str(SERVERS / "sdk_server.py"), "--transport", "stdio"]
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}


def start_relay(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([*RELAY, "run", "--listen", f"127.0.0.1:{port}", *args, "--", *SDK_STDIO],
                            env=relay_env(tmp_path, LISTEN_TOKEN="t0ken-for-tests"),
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "relay.log").open("wb"))
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def relay_url(tmp_path: Path) -> Iterator[str]:
    proc, base = start_relay(tmp_path)
    try:
        yield base
    finally:
        stop(proc)
    assert "Traceback" not in (tmp_path / "relay.log").read_text()


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name:
                fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if fields:
            events.append(fields)
    return events


def initialize(client: httpx.Client, base: str) -> str:
    resp = client.post(f"{base}/mcp", json=INIT, headers=ACCEPT)
    assert resp.status_code == 200, resp.text
    sid = resp.headers["mcp-session-id"]
    client.post(f"{base}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers={**ACCEPT, "mcp-session-id": sid})
    return sid


def test_foreign_origin_and_host_are_refused(relay_url: str) -> None:
    with httpx.Client() as c:
        assert c.post(f"{relay_url}/mcp", json=INIT, headers={**ACCEPT, "origin": "https://evil.example"}).status_code == 403
        assert c.post(f"{relay_url}/mcp", json=INIT, headers={**ACCEPT, "host": "evil.example"}).status_code == 421
        ok = c.post(f"{relay_url}/mcp", json=INIT, headers={**ACCEPT, "origin": "http://localhost:5173"})
        assert ok.status_code == 200


def test_allow_origin_and_bearer_token(tmp_path: Path) -> None:
    proc, base = start_relay(tmp_path, "--allow-origin", "https://app.example", "--listen-token-env", "LISTEN_TOKEN")
    try:
        with httpx.Client() as c:
            headers = {**ACCEPT, "origin": "https://app.example"}
            assert c.post(f"{base}/mcp", json=INIT, headers=headers).status_code == 401
            wrong = {**headers, "authorization": "Bearer nope"}
            assert c.post(f"{base}/mcp", json=INIT, headers=wrong).status_code == 401
            right = {**headers, "authorization": "Bearer t0ken-for-tests"}
            assert c.post(f"{base}/mcp", json=INIT, headers=right).status_code == 200
    finally:
        stop(proc)
    assert "t0ken-for-tests" not in (tmp_path / "relay.log").read_text()


def test_listen_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    out = subprocess.run([*RELAY, "run", "--listen", "0.0.0.0:8765", "--", *SDK_STDIO], env=relay_env(tmp_path),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "loopback" in out.stderr and out.stdout == ""


def test_delete_ends_the_session(relay_url: str) -> None:
    with httpx.Client() as c:
        sid = initialize(c, relay_url)
        assert c.delete(f"{relay_url}/mcp", headers={"mcp-session-id": sid}).status_code == 200
        after = c.post(f"{relay_url}/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                       headers={**ACCEPT, "mcp-session-id": sid})
        assert after.status_code == 404


def test_a_client_that_loses_its_connection_resumes_with_last_event_id(relay_url: str) -> None:
    with httpx.Client(timeout=30) as c:
        sid = initialize(c, relay_url)
        headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "slow", "arguments": {"seconds": 1}}}
        with c.stream("POST", f"{relay_url}/mcp", json=call, headers=headers) as resp:
            first = next(resp.iter_raw())  # the priming event, then the connection drops
        [priming] = sse_events(first.decode())
        assert priming["data"] == "" and "retry" in priming
        resumed = c.get(f"{relay_url}/mcp", headers={**headers, "accept": "text/event-stream",
                                                     "last-event-id": priming["id"]})
        assert resumed.status_code == 200
        answers = [e for e in sse_events(resumed.text) if e.get("data")]
        assert [a["data"] for a in answers][-1].startswith('{"jsonrpc":"2.0","id":7,"result"')


def test_a_client_cannot_resume_someone_elses_stream(relay_url: str) -> None:
    with httpx.Client() as c:
        sid = initialize(c, relay_url)
        resp = c.get(f"{relay_url}/mcp", headers={"accept": "text/event-stream", "mcp-session-id": sid,
                                                  "last-event-id": "999-1"})
        assert resp.status_code == 404


async def _sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="sampled"),
                                     model="m")


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sdk_client_over_streamable_http(relay_url: str, mode: str) -> None:
    progress: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    with anyio.fail_after(60):
        async with Client(f"{relay_url}/mcp", mode=mode, sampling_callback=_sampling) as client:  # type: ignore[arg-type]
            echo = await client.call_tool("echo", {"text": "through relay"})
            assert echo.content[0].text == "through relay"  # type: ignore[union-attr]
            await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
            sampled = await client.call_tool("sample", {"prompt": "hi"})
            assert sampled.content[0].text == "sampled"  # type: ignore[union-attr]
    assert progress == [1.0, 2.0, 3.0]


@pytest.mark.anyio
async def test_sdk_client_over_legacy_sse(relay_url: str) -> None:
    with anyio.fail_after(60):
        async with Client(sse_client(f"{relay_url}/sse"), mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"echo", "progress", "sample"} <= tools
            echo = await client.call_tool("echo", {"text": "legacy"})
            assert echo.content[0].text == "legacy"  # type: ignore[union-attr]
