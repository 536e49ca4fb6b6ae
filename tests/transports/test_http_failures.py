"""What relay does when an HTTP upstream goes wrong: expiry, death, refusal, errors for one request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.http_stub import http_stub, simple_mcp
from tests.support.processes import RELAY, RawClient, free_port, relay_env, sdk_server, stop


def relay(tmp_path: Path, url: str, *args: str) -> RawClient:
    return RawClient([*RELAY, "run", "--url", url, *args], env=relay_env(tmp_path))


def echo(c: RawClient, text: str) -> Any:
    return c.request("tools/call", {"name": "echo", "arguments": {"text": text}})


def test_server_restart_is_invisible_to_the_client(tmp_path: Path) -> None:
    """A restarted server answers 404 to the old session; relay replays initialize and retries."""
    port = free_port()
    with sdk_server("streamable-http", port=port) as (url, proc):
        c = relay(tmp_path, url)
        c.initialize("2025-06-18")
        assert echo(c, "before")["result"]["content"][0]["text"] == "before"
        stop(proc)
    with sdk_server("streamable-http", port=port):
        try:
            resp = echo(c, "after")
            assert resp["result"]["content"][0]["text"] == "after", resp
            assert echo(c, "again")["result"]["content"][0]["text"] == "again"
            assert "re-initialising" in c.stderr
            assert c.close() == 0
        finally:
            c.kill()


def test_server_dying_mid_call_answers_the_call_then_ends_the_session(tmp_path: Path) -> None:
    with sdk_server("streamable-http") as (url, proc):
        with relay(tmp_path, url) as c:
            c.initialize("2025-06-18")
            crashed = c.request("tools/call", {"name": "crash", "arguments": {}})
            assert crashed["error"]["code"] == -32000
            assert "upstream" in crashed["error"]["message"]
            proc.wait(10)
            after = echo(c, "anyone?")
            assert "unreachable" in after["error"]["message"]
            assert c.close() == 4
            assert "unreachable" in c.stderr.strip().splitlines()[-1]


def test_unreachable_upstream_is_a_one_line_diagnosis(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    with relay(tmp_path, url) as c:
        resp = c.initialize()
        assert resp["error"]["code"] == -32000 and "unreachable" in resp["error"]["message"]
        assert c.close() == 4
        lines = [ln for ln in c.stderr.splitlines() if ln.strip()]
        assert lines and "unreachable" in lines[-1] and "Traceback" not in c.stderr


def test_401_names_the_resource_metadata_and_ends_the_session(tmp_path: Path) -> None:
    def refuse(method: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        meta = 'Bearer resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource"'
        return 401, {"www-authenticate": meta}, b""

    with http_stub(refuse) as (url, _), relay(tmp_path, url, "-H", "Authorization: Bearer sekret-token-123") as c:
        resp = c.initialize()
        assert "401" in resp["error"]["message"]
        assert c.close() == 4
        assert "oauth-protected-resource" in c.stderr
        assert "sekret-token-123" not in c.stderr  # a credential never reaches a log


def test_a_5xx_for_one_request_answers_that_request_only(tmp_path: Path) -> None:
    def flaky(method: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and body.get("params", {}).get("name") == "boom":
            return 503, {}, b"busy"
        return simple_mcp(method, body, headers)

    with http_stub(flaky) as (url, seen), relay(tmp_path, url, "--transport", "streamable-http") as c:
        c.initialize("2025-06-18")
        boom = c.request("tools/call", {"name": "boom", "arguments": {}})
        assert "HTTP 503" in boom["error"]["message"]
        assert echo(c, "fine")["result"]["content"][0]["text"] == "called"
        assert c.close() == 0
        posts = [h for m, _, h in seen if m == "POST"]
        # After initialize, every request carries the session and the negotiated version.
        assert all(h.get("mcp-session-id") == "stub-session" for h in posts[1:])
        assert all(h.get("mcp-protocol-version") == "2025-06-18" for h in posts[1:])
        assert posts[-1].get("mcp-method") == "tools/call" and posts[-1].get("mcp-name") == "echo"
        assert ("DELETE", None) in [(m, b) for m, b, _ in seen]


def test_a_json_rpc_error_in_an_http_error_reaches_the_client(tmp_path: Path) -> None:
    def modern(method: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        err = {"jsonrpc": "2.0", "id": None, "error": {"code": -32022, "message": "unsupported",
                                                       "data": {"supported": ["2026-07-28"]}}}
        return 400, {"content-type": "application/json"}, json.dumps(err).encode()

    with http_stub(modern) as (url, seen), relay(tmp_path, url) as c:
        c.send({"jsonrpc": "2.0", "id": 9, "method": "tools/list",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}}})
        resp = c.recv()
        assert resp["id"] == 9 and resp["error"]["code"] == -32022
        # A modern error is not a reason to fall back to the legacy SSE transport.
        assert [m for m, _, _ in seen] == ["POST"]
        assert seen[0][2]["mcp-protocol-version"] == "2099-01-01"
        assert c.close() == 0


def test_auto_falls_back_to_legacy_sse(tmp_path: Path) -> None:
    with sdk_server("sse") as (url, _), relay(tmp_path, url) as c:
        assert c.initialize("2024-11-05")["result"]["serverInfo"]
        assert echo(c, "via sse")["result"]["content"][0]["text"] == "via sse"
        assert c.close() == 0


def test_upstream_slow_to_answer_does_not_block_other_requests(tmp_path: Path) -> None:
    with sdk_server("streamable-http") as (url, _), relay(tmp_path, url) as c:
        c.initialize("2025-06-18")
        c.send({"jsonrpc": "2.0", "id": 100, "method": "tools/call", "params": {"name": "slow", "arguments": {"seconds": 3}}})
        # The quick answer overtakes the slow one.
        assert echo(c, "quick")["result"]["content"][0]["text"] == "quick"
        assert all(m.get("id") != 100 for m in c.other)
        assert c.recv(10)["id"] == 100
        assert c.close() == 0
