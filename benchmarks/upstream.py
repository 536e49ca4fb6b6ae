"""A minimal, fast Streamable HTTP MCP server for relay's data-path benchmark.

It is the common upstream that every bridge under test (relay, mcp-remote,
mcp-proxy) connects to, so it must add as little time as possible to a round
trip.  It uses no MCP SDK: every response is prebuilt bytes, spliced with the
request's JSON-RPC id, and sent as a single ``application/json`` body.

Two servers carry the same MCP logic (:class:`McpEndpoint`):

* ``raw`` (the default): a small HTTP/1.1 server written directly on
  ``asyncio.Protocol`` (keep-alive, ``Content-Length`` and chunked request
  bodies).  It needs only the standard library.
* ``asgi``: the same endpoint as a raw ASGI app under uvicorn.

``raw`` is the default because it is the faster of the two here (see
``benchmarks/README.md``); ``--server asgi`` is kept to check that claim.

What the endpoint answers, on any path:

* ``POST`` with ``initialize``: echoes the client's ``protocolVersion`` when it
  is a known one (else ``2025-06-18``) and issues an ``Mcp-Session-Id``.
* ``POST`` with notifications or responses only: ``202 Accepted``.
* ``POST`` with ``tools/list``, ``tools/call`` (tools ``small`` and ``rows``),
  ``ping``: a JSON-RPC response; other methods get error ``-32601``.
  Requests other than ``initialize`` must carry an issued session id
  (``400`` when missing, ``404`` when unknown), as a real server would.
* ``GET``: ``405`` (no server-to-client stream); ``DELETE``: ``200`` and the
  session is forgotten.

Run it as ``python benchmarks/upstream.py [--port 0] [--server raw|asgi]
[--exit-with-stdin]``; it prints ``READY <port>`` on stdout once it is
listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final

SUPPORTED_PROTOCOL_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
DEFAULT_PROTOCOL_VERSION: Final = "2025-06-18"
ROWS_COUNT: Final = 2000

# Well-known test card numbers (Luhn-valid, never issued): the relay masks them.
TEST_CARDS: Final = (
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "4012888888881881",
    "5105105105105100",
)

TOOLS: Final[list[dict[str, Any]]] = [
    {
        "name": "small",
        "description": "Returns a tiny text result.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
    {
        "name": "rows",
        "description": f"Returns {ROWS_COUNT} rows of a table of fake orders (about 110 KB).",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def orders_table(count: int = ROWS_COUNT, seed: int = 1729) -> str:
    """Return ``count`` rows of fake orders as CSV text, deterministic for ``seed``."""
    rng = random.Random(seed)
    first = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tony")
    last = (
        "Lovelace",
        "Turing",
        "Hopper",
        "Dijkstra",
        "Liskov",
        "Knuth",
        "Allen",
        "Thompson",
        "Perlman",
        "Hoare",
    )
    statuses = ("paid", "refunded", "pending", "shipped")
    currencies = ("USD", "EUR", "GBP")
    lines = ["order_id,customer,card,amount,currency,status"]
    for i in range(count):
        customer = f"{rng.choice(first)} {rng.choice(last)}"
        amount = rng.randrange(100, 100_000) / 100
        lines.append(
            f"{100001 + i},{customer},{rng.choice(TEST_CARDS)},{amount:.2f},{rng.choice(currencies)},{rng.choice(statuses)}"
        )
    return "\n".join(lines) + "\n"


def _text_result(text: str) -> bytes:
    return _dumps({"content": [{"type": "text", "text": text}], "isError": False})


class McpEndpoint:
    """The MCP logic shared by both servers: one HTTP request in, one response out."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()
        self._results: dict[str, bytes] = {
            "tools/list": _dumps({"tools": TOOLS}),
            "ping": b"{}",
        }
        self._tool_results: dict[str, bytes] = {
            "small": _text_result("ok"),
            "rows": _text_result(orders_table()),
        }

    def initialize_result(self, params: Mapping[str, Any]) -> bytes:
        """Build the ``initialize`` result, echoing a known ``protocolVersion``."""
        requested = params.get("protocolVersion")
        version = requested if requested in SUPPORTED_PROTOCOL_VERSIONS else DEFAULT_PROTOCOL_VERSION
        return _dumps(
            {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "relay-bench-upstream", "version": "1.0.0"},
            }
        )

    def handle(
        self, method: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one HTTP request; ``headers`` has lower-case names."""
        if method == "GET":
            return 405, [("allow", "POST, DELETE")], b""
        if method == "DELETE":
            self.sessions.discard(headers.get("mcp-session-id", ""))
            return 200, [], b""
        if method != "POST":
            return 405, [("allow", "GET, POST, DELETE")], b""
        try:
            message = json.loads(body)
        except ValueError:
            return 400, [("content-type", "application/json")], self._error(None, -32700, "Parse error")
        messages = message if isinstance(message, list) else [message]
        if not messages or not all(isinstance(m, dict) for m in messages):
            return 400, [("content-type", "application/json")], self._error(None, -32600, "Invalid Request")

        extra: list[tuple[str, str]] = []
        if any(m.get("method") == "initialize" for m in messages):
            session_id = uuid.uuid4().hex
            self.sessions.add(session_id)
            extra.append(("mcp-session-id", session_id))
        else:
            session_id = headers.get("mcp-session-id", "")
            if not session_id:
                return (
                    400,
                    [("content-type", "application/json")],
                    self._error(None, -32600, "Missing session id"),
                )
            if session_id not in self.sessions:
                return (
                    404,
                    [("content-type", "application/json")],
                    self._error(None, -32001, "Session not found"),
                )

        replies = [self._reply(m) for m in messages if "id" in m and "method" in m]
        if not replies:
            return 202, extra, b""
        payload = replies[0] if not isinstance(message, list) else b"[" + b",".join(replies) + b"]"
        return 200, [("content-type", "application/json"), *extra], payload

    def _reply(self, request: Mapping[str, Any]) -> bytes:
        request_id = request["id"]
        method = request["method"]
        params = request.get("params") or {}
        if method == "tools/call":
            result = self._tool_results.get(params.get("name", ""))
            if result is None:
                return self._error(request_id, -32602, f"Unknown tool: {params.get('name')!r}")
        elif method == "initialize":
            result = self.initialize_result(params)
        else:
            result = self._results.get(method)
            if result is None:
                return self._error(request_id, -32601, f"Method not found: {method}")
        return b'{"jsonrpc":"2.0","id":' + _dumps(request_id) + b',"result":' + result + b"}"

    @staticmethod
    def _error(request_id: object, code: int, message: str) -> bytes:
        return _dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


# --------------------------------------------------------------------------- raw asyncio server

_REASONS: Final = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
}


class _IncompleteError(Exception):
    """The buffer does not hold a whole request yet."""


class _BadRequestError(Exception):
    """The bytes are not an HTTP/1.1 request this server understands."""


def _decode_chunked(buf: bytes | bytearray, start: int) -> tuple[bytes, int]:
    """Decode a chunked body starting at ``start``; return the body and the index after it."""
    body = bytearray()
    pos = start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            raise _IncompleteError
        try:
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise _BadRequestError from exc
        pos = line_end + 2
        if size == 0:
            # Skip trailers up to the empty line.
            while True:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    raise _IncompleteError
                if line_end == pos:
                    return bytes(body), pos + 2
                pos = line_end + 2
        if len(buf) < pos + size + 2:
            raise _IncompleteError
        body += buf[pos : pos + size]
        pos += size + 2


class _HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parses pipelined requests, answers each at once."""

    def __init__(self, endpoint: McpEndpoint) -> None:
        self._endpoint = endpoint
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self._buf and self._transport is not None:
            try:
                consumed = self._handle_one()
            except _IncompleteError:
                return
            except _BadRequestError:
                self._transport.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                self._transport.close()
                self._transport = None
                return
            del self._buf[:consumed]

    def _handle_one(self) -> int:
        buf = self._buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buf) > 65536:
                raise _BadRequestError
            raise _IncompleteError
        lines = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _BadRequestError
        method = parts[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequestError
            headers[name.strip().lower()] = value.strip()
        body_start = head_end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, end = _decode_chunked(buf, body_start)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError as exc:
                raise _BadRequestError from exc
            end = body_start + length
            if len(buf) < end:
                raise _IncompleteError
            body = bytes(buf[body_start:end])

        status, extra, payload = self._endpoint.handle(method, headers, body)
        close = headers.get("connection", "").lower() == "close" or parts[2] == "HTTP/1.0"
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"content-length: {len(payload)}"]
        head.extend(f"{name}: {value}" for name, value in extra)
        if close:
            head.append("connection: close")
        assert self._transport is not None
        self._transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        if close:
            self._transport.close()
            self._transport = None
        return end

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve_raw(host: str, port: int, ready: Callable[[int], None]) -> None:
    """Serve the endpoint with the asyncio server until cancelled or signalled."""
    endpoint = McpEndpoint()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpProtocol(endpoint), host, port, backlog=128)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        ready(server.sockets[0].getsockname()[1])
        await stop.wait()


# --------------------------------------------------------------------------- ASGI app for uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AsgiApp:
    """The endpoint as a raw ASGI application (no framework)."""

    def __init__(self) -> None:
        self.endpoint = McpEndpoint()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, extra, payload = self.endpoint.handle(scope["method"], headers, b"".join(chunks))
        raw_headers = [(b"content-length", str(len(payload)).encode())]
        raw_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


async def serve_asgi(host: str, port: int, ready: Callable[[int], None]) -> None:
    """Serve the endpoint under uvicorn until signalled."""
    import uvicorn

    config = uvicorn.Config(
        AsgiApp(), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    # uvicorn has no start-up hook: poll its flag until it listens (or gives up).
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if server.started:
        ready(server.servers[0].sockets[0].getsockname()[1])
    await serving


def _exit_on_stdin_eof() -> None:
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--server", choices=("raw", "asgi"), default="raw")
    parser.add_argument(
        "--exit-with-stdin", action="store_true", help="stop when stdin reaches EOF (its parent is gone)"
    )
    args = parser.parse_args(argv)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_on_stdin_eof, name="stdin-watch", daemon=True).start()

    def ready(port: int) -> None:
        sys.stdout.write(f"READY {port}\n")
        sys.stdout.flush()

    serve = serve_asgi if args.server == "asgi" else serve_raw
    asyncio.run(serve(args.host, args.port, ready))


if __name__ == "__main__":
    main()
