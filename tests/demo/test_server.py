"""End-to-end tests for the demo payments MCP server (`python -m relay.demo.server`).

Each test spawns the server as a subprocess and speaks raw newline-delimited
JSON-RPC to it over stdio, exactly as an MCP client would. One test drives it
with the official `mcp` SDK client to prove it is a real MCP server.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0

ALL_VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
TOOL_NAMES = {"lookup_order", "get_customer", "list_orders", "refund_payment", "export_transactions"}


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("RELAY_DEMO_QUIET", None)
    return env


class DemoServer:
    """A running `python -m relay.demo.server` with a raw JSON-RPC client bolted on."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay.demo.server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
            env=_server_env(),
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_thread.start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    # -- wire -------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def recv(self, timeout: float = TIMEOUT) -> Any:
        """The next message the server wrote; every stdout line must be one JSON value."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no message from the server within {timeout}s; stderr:\n{self.stderr}"
            ) from None
        if line is None:
            raise AssertionError(f"server closed stdout; stderr:\n{self.stderr}")
        assert line.endswith(b"\n")
        return json.loads(line)

    def assert_silent(self, timeout: float = 0.3) -> None:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected output from the server: {line!r}")

    def recv_response(self) -> dict[str, Any]:
        """The next response, collecting any notifications that precede it."""
        while True:
            message = self.recv()
            if isinstance(message, dict) and "id" not in message:
                self.notifications.append(message)
                continue
            return message  # type: ignore[no-any-return]

    def request(self, method: str, params: Any = None, *, omit_params: bool = False) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if not omit_params:
            message["params"] = {} if params is None else params
        self.send(message)
        response = self.recv_response()
        assert response["jsonrpc"] == "2.0"
        assert response["id"] == self._next_id
        assert ("result" in response) != ("error" in response)
        return response

    def result(self, method: str, params: Any = None) -> dict[str, Any]:
        response = self.request(method, params)
        assert "result" in response, response
        return response["result"]  # type: ignore[no-any-return]

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        response = self.request(method, params)
        assert "error" in response, response
        error = response["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str)
        return error  # type: ignore[no-any-return]

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        result = self.result(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "pytest-raw", "version": "1.0"},
            },
        )
        self.notify("notifications/initialized")
        return result

    def call(self, tool: str, arguments: Any = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": tool}
        if arguments is not None:
            params["arguments"] = arguments
        result = self.result("tools/call", params)
        assert isinstance(result["content"], list) and result["content"]
        for block in result["content"]:
            assert block["type"] == "text" and isinstance(block["text"], str)
        assert isinstance(result.get("isError", False), bool)
        return result

    def close(self, timeout: float = TIMEOUT) -> int:
        """Close stdin (EOF) and wait for the server to exit by itself."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass


@pytest.fixture
def server() -> Iterator[DemoServer]:
    srv = DemoServer()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def session(server: DemoServer) -> DemoServer:
    """A server that has completed the initialize handshake."""
    server.initialize()
    return server


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


# ----------------------------------------------------------------------------
# Lifecycle and negotiation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_initialize_echoes_supported_version(server: DemoServer, version: str) -> None:
    result = server.initialize(version)
    assert result["protocolVersion"] == version


@pytest.mark.parametrize("version", ["2023-01-01", "2099-12-31", "not-a-version"])
def test_initialize_counter_offers_for_unknown_version(server: DemoServer, version: str) -> None:
    result = server.initialize(version)
    # The newest version negotiable through the initialize handshake.
    assert result["protocolVersion"] == "2025-11-25"


def test_initialize_result_shape(server: DemoServer) -> None:
    import relay

    result = server.initialize()
    caps = result["capabilities"]
    assert set(caps) >= {"tools", "resources", "prompts", "logging"}
    assert result["serverInfo"]["name"] == "relay-demo-payments"
    assert result["serverInfo"]["version"] == relay.__version__
    assert isinstance(result["instructions"], str) and "test card" in result["instructions"]


def test_initialize_rejects_bad_params(server: DemoServer) -> None:
    assert server.error("initialize", {"capabilities": {}})["code"] == -32602
    assert server.error("initialize", {"protocolVersion": 20250618})["code"] == -32602
    assert server.error("initialize", {"protocolVersion": "2025-06-18", "clientInfo": "x"})["code"] == -32602
    # The session survives and can still initialize properly.
    assert server.initialize()["protocolVersion"] == "2025-11-25"


def test_ping(session: DemoServer) -> None:
    assert session.request("ping", omit_params=True)["result"] == {}
    assert session.result("ping", {}) == {}


def test_notifications_get_no_reply(session: DemoServer) -> None:
    session.notify("notifications/initialized")
    session.notify("notifications/cancelled", {"requestId": 99, "reason": "user gave up"})
    session.notify("notifications/roots/list_changed")
    session.notify("notifications/some_future_thing", {"x": 1})
    session.assert_silent()
    assert session.result("ping") == {}


def test_clean_exit_on_stdin_eof(session: DemoServer) -> None:
    session.call("lookup_order", {"order_id": "ord_1001"})
    assert session.close() == 0
    session._stderr_thread.join(timeout=TIMEOUT)
    assert "Traceback" not in session.stderr
    # Nothing further was written to stdout.
    assert session._lines.get(timeout=TIMEOUT) is None


def test_exits_cleanly_on_immediate_eof(server: DemoServer) -> None:
    assert server.close() == 0


def test_logs_go_to_stderr_only(session: DemoServer) -> None:
    session.request("no/such/method")
    session.send_raw(b"{broken\n")
    session.recv()
    assert session.close() == 0
    session._stderr_thread.join(timeout=TIMEOUT)
    assert "relay-demo-payments" in session.stderr
    assert session._lines.get(timeout=TIMEOUT) is None


def test_quiet_flag_silences_stderr() -> None:
    srv = DemoServer("--quiet")
    try:
        srv.initialize()
        srv.send_raw(b"nope\n")
        assert srv.recv()["error"]["code"] == -32700
        assert srv.close() == 0
        srv._stderr_thread.join(timeout=TIMEOUT)
        assert srv.stderr == ""
    finally:
        srv.kill()


# ----------------------------------------------------------------------------
# Tools
# ----------------------------------------------------------------------------


def test_tools_list(session: DemoServer) -> None:
    result = session.result("tools/list")
    tools = {t["name"]: t for t in result["tools"]}
    assert set(tools) == TOOL_NAMES
    assert "nextCursor" not in result
    for tool in tools.values():
        assert isinstance(tool["description"], str) and tool["description"]
        schema = tool["inputSchema"]
        assert schema["type"] == "object"
        assert set(schema.get("required", [])) <= set(schema["properties"])
    for name in ("lookup_order", "get_customer", "list_orders", "export_transactions"):
        assert tools[name]["annotations"]["readOnlyHint"] is True
    refund = tools["refund_payment"]
    assert refund["annotations"]["readOnlyHint"] is False
    assert refund["annotations"]["destructiveHint"] is True
    assert set(refund["inputSchema"]["required"]) == {"order_id", "amount", "reason"}
    assert tools["lookup_order"]["inputSchema"]["required"] == ["order_id"]


def test_lookup_order(session: DemoServer) -> None:
    result = session.call("lookup_order", {"order_id": "ord_1001"})
    assert result["isError"] is False
    text = _text(result)
    assert "ord_1001" in text and "Ada Lovelace" in text
    assert "4111 1111 1111 1111" in text
    assert "129.99 USD" in text
    structured = result["structuredContent"]
    assert structured["card_number"] == "4111111111111111"
    assert structured["card_expiry"] == "12/29"
    assert structured["amount_cents"] == 12999
    assert "track2" not in structured
    # The serialized-JSON block mirrors structuredContent for older clients.
    assert json.loads(result["content"][1]["text"]) == structured


def test_lookup_order_amex_grouping(session: DemoServer) -> None:
    result = session.call("lookup_order", {"order_id": "ord_1005"})
    assert "3782 822463 10005" in _text(result)
    assert result["structuredContent"]["card_number"] == "378282246310005"


def test_lookup_order_with_track2(session: DemoServer) -> None:
    result = session.call("lookup_order", {"order_id": "ord_1007"})
    track2 = ";4111111111111111=29121010000012300000?"
    assert track2 in _text(result)
    assert result["structuredContent"]["track2"] == track2
    assert result["structuredContent"]["entry_mode"] == "swipe"


def test_lookup_order_normalizes_id(session: DemoServer) -> None:
    result = session.call("lookup_order", {"order_id": "  ORD_1002 "})
    assert result["isError"] is False
    assert "4242 4242 4242 4242" in _text(result)


def test_lookup_unknown_order_is_tool_error(session: DemoServer) -> None:
    result = session.call("lookup_order", {"order_id": "ord_9999"})
    assert result["isError"] is True
    assert "not found" in _text(result)
    assert "structuredContent" not in result


def test_get_customer(session: DemoServer) -> None:
    result = session.call("get_customer", {"customer_id": "cus_001"})
    assert result["isError"] is False
    customer = json.loads(_text(result))
    assert customer["name"] == "Ada Lovelace"
    assert customer["email"] == "ada.lovelace@example.com"
    assert customer["card"]["number"] == "4111111111111111"
    assert customer["card"]["cvv"] == "123"
    assert customer["card"]["expiry"] == "12/29"
    assert customer["order_ids"] == ["ord_1001", "ord_1007"]

    amex = json.loads(_text(session.call("get_customer", {"customer_id": "cus_005"})))
    assert amex["card"]["number"] == "378282246310005"
    assert amex["card"]["cvv"] == "1234"

    missing = session.call("get_customer", {"customer_id": "cus_999"})
    assert missing["isError"] is True


def test_list_orders(session: DemoServer) -> None:
    result = session.call("list_orders", {"limit": 10})
    assert result["isError"] is False
    text = _text(result)
    rows = [line for line in text.splitlines() if line.startswith("| ord_")]
    assert len(rows) == 8
    assert "| Order | Customer | Card |" in text
    # Card numbers appear in several formats: spaces, dashes and contiguous.
    assert "5555 5555 5555 4444" in text
    assert "4111-1111-1111-1111" in text
    assert "6011111111111117" in text
    assert "3782 822463 10005" in text
    assert "2223-0031-2200-3222" in text

    two = _text(session.call("list_orders", {"limit": 2}))
    assert len([line for line in two.splitlines() if line.startswith("| ord_")]) == 2

    default = _text(session.call("list_orders"))
    assert len([line for line in default.splitlines() if line.startswith("| ord_")]) == 8


def test_refund_payment(session: DemoServer) -> None:
    result = session.call("refund_payment", {"order_id": "ord_1001", "amount": 29.99, "reason": "damaged"})
    assert result["isError"] is False, _text(result)
    text = _text(result)
    assert "29.99 USD" in text and "ord_1001" in text and "ending 1111" in text
    refund = result["structuredContent"]
    assert refund["status"] == "succeeded"
    assert refund["amount_cents"] == 2999
    assert refund["remaining_cents"] == 10000
    assert refund["refund_id"].startswith("re_")

    # State carries over: the order is now partially refunded...
    looked_up = session.call("lookup_order", {"order_id": "ord_1001"})["structuredContent"]
    assert looked_up["status"] == "partially_refunded"
    assert looked_up["refunded_cents"] == 2999
    # ...and cannot be refunded beyond what is left.
    over = session.call("refund_payment", {"order_id": "ord_1001", "amount": 100.01, "reason": "again"})
    assert over["isError"] is True and "exceeds" in _text(over)
    rest = session.call("refund_payment", {"order_id": "ord_1001", "amount": 100, "reason": "rest"})
    assert rest["isError"] is False
    assert rest["structuredContent"]["order_status"] == "refunded"


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"order_id": "ord_1006", "amount": 1, "reason": "x"}, "fully refunded"),
        ({"order_id": "ord_1008", "amount": 1, "reason": "x"}, "authorized"),
        ({"order_id": "ord_4040", "amount": 1, "reason": "x"}, "not found"),
        ({"order_id": "ord_1002", "amount": -5, "reason": "x"}, "greater than zero"),
        ({"order_id": "ord_1002", "amount": 0, "reason": "x"}, "greater than zero"),
        ({"order_id": "ord_1002", "amount": "10", "reason": "x"}, "number"),
        ({"order_id": "ord_1002", "amount": True, "reason": "x"}, "number"),
        ({"order_id": "ord_1002", "amount": 1.234, "reason": "x"}, "decimal places"),
        ({"order_id": "ord_1002", "amount": 1, "reason": "   "}, "empty"),
        ({"order_id": "ord_1002", "amount": 1, "reason": "x" * 501}, "at most"),
        ({"order_id": "ord_1002", "amount": 1}, "reason"),
        ({"order_id": 1002, "amount": 1, "reason": "x"}, "string"),
    ],
)
def test_refund_payment_rejections(session: DemoServer, arguments: dict[str, Any], needle: str) -> None:
    result = session.call("refund_payment", arguments)
    assert result["isError"] is True
    assert needle in _text(result)


def test_export_transactions(session: DemoServer) -> None:
    result = session.call("export_transactions", {"limit": 100})
    assert result["isError"] is False
    rows = list(csv.DictReader(io.StringIO(_text(result))))
    assert len(rows) == 9  # 8 charges + the seeded refund on ord_1006
    assert {r["type"] for r in rows} == {"charge", "refund"}
    assert {r["card_number"] for r in rows} >= {
        "4111111111111111",
        "4242424242424242",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "6011111111111117",
    }
    assert all(r["card_expiry"] for r in rows)
    charge = next(r for r in rows if r["order_id"] == "ord_1003" and r["type"] == "charge")
    assert charge["amount"] == "2499.00" and charge["customer_name"] == "Grace Hopper"

    session.call("refund_payment", {"order_id": "ord_1003", "amount": 99, "reason": "goodwill"})
    after = list(csv.DictReader(io.StringIO(_text(session.call("export_transactions")))))
    assert any(
        r["type"] == "refund" and r["order_id"] == "ord_1003" and r["amount"] == "-99.00" for r in after
    )

    three = list(csv.DictReader(io.StringIO(_text(session.call("export_transactions", {"limit": 3})))))
    assert len(three) == 3


@pytest.mark.parametrize(
    ("tool", "arguments", "needle"),
    [
        ("lookup_order", {}, "Missing required"),
        ("lookup_order", {"order_id": None}, "Missing required"),
        ("lookup_order", {"order_id": "ord_1001", "extra": 1}, "Unknown argument"),
        ("get_customer", {"customer_id": ["cus_001"]}, "string"),
        ("list_orders", {"limit": 0}, "between"),
        ("list_orders", {"limit": 51}, "between"),
        ("list_orders", {"limit": "5"}, "integer"),
        ("list_orders", {"limit": 2.5}, "integer"),
        ("export_transactions", {"limit": -1}, "between"),
    ],
)
def test_argument_validation_is_a_tool_error(
    session: DemoServer, tool: str, arguments: dict[str, Any], needle: str
) -> None:
    # SEP-1303: argument problems are tool results the model can read and fix, not protocol errors.
    result = session.call(tool, arguments)
    assert result["isError"] is True
    assert needle in _text(result)


# ----------------------------------------------------------------------------
# Protocol errors
# ----------------------------------------------------------------------------


def test_unknown_tool(session: DemoServer) -> None:
    error = session.error("tools/call", {"name": "drop_tables", "arguments": {}})
    assert error["code"] == -32602
    assert "drop_tables" in error["message"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"name": 7},
        {"name": "lookup_order", "arguments": "ord_1001"},
        {"name": "lookup_order", "arguments": ["ord_1001"]},
        ["lookup_order"],
        "lookup_order",
    ],
)
def test_malformed_tools_call(session: DemoServer, params: Any) -> None:
    assert session.error("tools/call", params)["code"] == -32602


def test_unknown_method(session: DemoServer) -> None:
    error = session.error("payments/launch_rockets")
    assert error["code"] == -32601
    # Not implemented on purpose: the SDK's server/discover probe falls back to initialize.
    assert session.error("server/discover")["code"] == -32601
    assert session.error("completion/complete", {"ref": {}, "argument": {}})["code"] == -32601


def test_malformed_json_keeps_session_alive(session: DemoServer) -> None:
    session.send_raw(b'{"jsonrpc": "2.0", "id": 5, "method": "ping"\n')
    error = session.recv()
    assert error["id"] is None
    assert error["error"]["code"] == -32700
    session.send_raw(b"\xff\xfe not utf-8\n")
    assert session.recv()["error"]["code"] == -32700
    session.send_raw(b'{"jsonrpc":"2.0","id":6,"method":"ping","params":{"x":NaN}}\n')
    assert session.recv()["error"]["code"] == -32700
    session.send_raw(b"[" * 100_000 + b"\n")
    assert session.recv()["error"]["code"] == -32700
    # Blank lines are ignored.
    session.send_raw(b"\n   \r\n")
    session.assert_silent()
    # Still perfectly usable.
    assert session.result("ping") == {}
    assert session.call("lookup_order", {"order_id": "ord_1002"})["isError"] is False


@pytest.mark.parametrize(
    ("message", "reply_id"),
    [
        (42, None),
        ("ping", None),
        ({"id": 1, "method": "ping"}, 1),  # no "jsonrpc"
        ({"jsonrpc": "1.0", "id": 2, "method": "ping"}, 2),
        ({"jsonrpc": "2.0", "id": 3, "method": 5}, 3),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}, None),
    ],
)
def test_invalid_requests(session: DemoServer, message: Any, reply_id: Any) -> None:
    session.send(message)
    reply = session.recv()
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == reply_id
    assert reply["error"]["code"] == -32600
    assert session.result("ping") == {}


def test_string_ids_are_echoed(session: DemoServer) -> None:
    session.send({"jsonrpc": "2.0", "id": "abc-123", "method": "ping"})
    assert session.recv() == {"jsonrpc": "2.0", "id": "abc-123", "result": {}}


def test_client_responses_are_ignored(session: DemoServer) -> None:
    session.send({"jsonrpc": "2.0", "id": 77, "result": {}})
    session.send({"jsonrpc": "2.0", "id": 78, "error": {"code": -1, "message": "no"}})
    session.assert_silent()
    assert session.result("ping") == {}


def test_batch(session: DemoServer) -> None:
    session.send(
        [
            {"jsonrpc": "2.0", "id": "a", "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": "b", "method": "nope"},
        ]
    )
    replies = session.recv()
    assert isinstance(replies, list)
    assert {r["id"]: r for r in replies}["a"]["result"] == {}
    assert {r["id"]: r for r in replies}["b"]["error"]["code"] == -32601
    session.send([])
    assert session.recv()["error"]["code"] == -32600


def test_params_must_be_an_object(session: DemoServer) -> None:
    assert session.error("tools/list", [1, 2])["code"] == -32602
    assert session.error("tools/list", {"cursor": "bogus"})["code"] == -32602


def test_garbage_never_crashes_the_server(session: DemoServer) -> None:
    nasty: list[bytes] = [
        b"null",
        b"true",
        b"[null]",
        b"{}",
        b'{"jsonrpc":"2.0"}',
        b'{"method":"ping"}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund_payment","arguments":null}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_orders","arguments":{"limit":1e308}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund_payment",'
        b'"arguments":{"order_id":"ord_1002","amount":1e400,"reason":"x"}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"review_refund","arguments":{"order_id":5}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":["x"]}}',
        b'{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":{}}}',
        b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
        "\u2028{\u00e9}".encode(),
        b"\x00\x01\x02",
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":null}}',
    ]
    for line in nasty:
        session.send_raw(line + b"\n")
    # Drain whatever came back (one reply per request-shaped line), then check liveness.
    session.send({"jsonrpc": "2.0", "id": "alive", "method": "ping"})
    while True:
        reply = session.recv()
        if isinstance(reply, dict) and reply.get("id") == "alive":
            break
    assert reply["result"] == {}
    assert session.close() == 0
    session._stderr_thread.join(timeout=TIMEOUT)
    assert "Traceback" not in session.stderr


# ----------------------------------------------------------------------------
# Resources, prompts, logging
# ----------------------------------------------------------------------------


def test_resources(session: DemoServer) -> None:
    resources = session.result("resources/list")["resources"]
    uris = {r["uri"] for r in resources}
    assert "payments://policies/refunds" in uris
    assert "payments://customers/cus_001" in uris
    for resource in resources:
        assert resource["name"] and resource["mimeType"]

    policy = session.result("resources/read", {"uri": "payments://policies/refunds"})["contents"][0]
    assert policy["mimeType"] == "text/markdown" and "Refund policy" in policy["text"]

    customer = session.result("resources/read", {"uri": "payments://customers/cus_003"})["contents"][0]
    assert json.loads(customer["text"])["card"]["number"] == "5555555555554444"

    order = session.result("resources/read", {"uri": "payments://orders/ord_1007"})["contents"][0]
    assert json.loads(order["text"])["track2"].startswith(";4111111111111111=")

    templates = session.result("resources/templates/list")["resourceTemplates"]
    assert {t["uriTemplate"] for t in templates} == {
        "payments://customers/{customer_id}",
        "payments://orders/{order_id}",
    }

    missing = session.error("resources/read", {"uri": "payments://customers/cus_404"})
    assert missing["code"] == -32002
    assert missing["data"] == {"uri": "payments://customers/cus_404"}
    assert session.error("resources/read", {})["code"] == -32602


def test_prompts(session: DemoServer) -> None:
    prompts = {p["name"]: p for p in session.result("prompts/list")["prompts"]}
    assert set(prompts) == {"review_refund", "customer_summary"}

    got = session.result("prompts/get", {"name": "review_refund", "arguments": {"order_id": "ord_1002"}})
    assert got["messages"][0]["role"] == "user"
    assert "ord_1002" in got["messages"][0]["content"]["text"]

    summary = session.result(
        "prompts/get", {"name": "customer_summary", "arguments": {"customer_id": "cus_002"}}
    )
    assert "cus_002" in summary["messages"][0]["content"]["text"]

    assert session.error("prompts/get", {"name": "nope"})["code"] == -32602
    assert session.error("prompts/get", {"name": "review_refund"})["code"] == -32602
    assert (
        session.error("prompts/get", {"name": "review_refund", "arguments": {"order_id": 3}})["code"]
        == -32602
    )


def test_logging_set_level(session: DemoServer) -> None:
    # No log notifications until the client opts in.
    session.call("lookup_order", {"order_id": "ord_1001"})
    assert session.notifications == []

    assert session.result("logging/setLevel", {"level": "info"}) == {}
    session.call("refund_payment", {"order_id": "ord_1002", "amount": 1, "reason": "test"})
    levels = [n["params"]["level"] for n in session.notifications]
    assert all(n["method"] == "notifications/message" for n in session.notifications)
    assert levels == ["info", "notice"]
    # Log notifications never carry card numbers.
    assert "4242" not in json.dumps(session.notifications)

    session.notifications.clear()
    assert session.result("logging/setLevel", {"level": "error"}) == {}
    session.call("lookup_order", {"order_id": "ord_1001"})
    assert session.notifications == []

    assert session.error("logging/setLevel", {"level": "loud"})["code"] == -32602


# ----------------------------------------------------------------------------
# The official MCP SDK client
# ----------------------------------------------------------------------------


def test_official_mcp_sdk_client(tmp_path: Path) -> None:
    anyio = pytest.importorskip("anyio")
    pytest.importorskip("mcp")
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "relay.demo.server"],
        env={"PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
    )

    async def scenario() -> None:
        with (tmp_path / "server-stderr.log").open("w") as errlog:
            with anyio.fail_after(60):
                # Default mode="auto": probes server/discover, falls back to initialize.
                async with Client(stdio_client(params, errlog=errlog)) as client:
                    assert client.protocol_version == "2025-11-25"
                    assert client.server_info is not None
                    assert client.server_info.name == "relay-demo-payments"
                    assert client.server_capabilities.tools is not None
                    assert client.instructions

                    listed = await client.list_tools()
                    tools = {t.name: t for t in listed.tools}
                    assert set(tools) == TOOL_NAMES
                    annotations = tools["refund_payment"].annotations
                    assert annotations is not None and annotations.destructive_hint is True

                    # The SDK validates structuredContent against the declared outputSchema.
                    order = await client.call_tool("lookup_order", {"order_id": "ord_1003"})
                    assert order.is_error is False
                    assert order.structured_content is not None
                    assert order.structured_content["card_number"] == "5555555555554444"
                    assert "5555 5555 5555 4444" in order.content[0].text  # type: ignore[union-attr]

                    customer = await client.call_tool("get_customer", {"customer_id": "cus_004"})
                    assert json.loads(customer.content[0].text)["card"]["cvv"] == "256"  # type: ignore[union-attr]

                    refund = await client.call_tool(
                        "refund_payment", {"order_id": "ord_1004", "amount": 5, "reason": "sdk test"}
                    )
                    assert refund.is_error is False
                    assert refund.structured_content is not None
                    assert refund.structured_content["amount_cents"] == 500

                    missing = await client.call_tool("lookup_order", {"order_id": "ord_0000"})
                    assert missing.is_error is True

                    resources = await client.list_resources()
                    assert any(str(r.uri) == "payments://policies/refunds" for r in resources.resources)
                    prompts = await client.list_prompts()
                    assert {p.name for p in prompts.prompts} == {"review_refund", "customer_summary"}

    anyio.run(scenario)
    assert "Traceback" not in (tmp_path / "server-stderr.log").read_text()
