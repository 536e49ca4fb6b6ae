"""A minimal, fast Streamable HTTP MCP server for relay's data-path benchmark.

It is the common upstream that every bridge under test (relay, mcp-remote,
mcp-proxy) connects to, so it must add as little time as possible to a round
trip.  It uses no MCP SDK: every response is prebuilt bytes, spliced with the
request's JSON-RPC id.  It answers in one of two wire formats (``--format``):

* ``json`` (the default): a single ``application/json`` body with
  ``Content-Length``, written at once;
* ``sse``: ``text/event-stream``, as an MCP SDK server does by default (the
  Python SDK on uvicorn + sse-starlette): the head is written first, then each
  JSON-RPC response as one ``event: message`` in its own HTTP chunk, then the
  closing chunk, three writes.

``--chunk-size N`` splits every body into HTTP chunks of ``N`` bytes, each its
own write (``Transfer-Encoding: chunked``), for either format.  ``--rows-shape``
picks the shape of the ``rows`` result (same 2,000 orders):

* ``text`` (the default): one text item, the table as CSV (~110 KB);
* ``items``: one text item per CSV line (header + 2,000 rows, ~160 KB);
* ``structured``: ``structuredContent`` ``{"rows": [2,000 objects]}`` plus one
  text item holding the same JSON (as the spec recommends), with an
  ``outputSchema`` on the tool (~530 KB).

``--rows-count`` changes the number of orders (2,000 by default), e.g. to
compare shapes at the same size: ``items`` x 1300 and ``structured`` x 410
are ~110 KB each.

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
[--format json|sse] [--chunk-size N] [--rows-shape text|items|structured]
[--rows-count 2000] [--nagle] [--exit-with-stdin]``; it prints ``READY <port>``
on stdout once it is listening.  ``--format``, ``--chunk-size`` and ``--nagle``
(a diagnostic: Nagle's algorithm back on, as on a server that forgets
``TCP_NODELAY``) apply to ``raw`` only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

SUPPORTED_PROTOCOL_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
DEFAULT_PROTOCOL_VERSION: Final = "2025-06-18"
ROWS_COUNT: Final = 2000
FORMATS: Final = ("json", "sse")
ROWS_SHAPES: Final = ("text", "items", "structured")

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
        "description": "Returns a table of fake orders (2,000 rows, about 110 KB, by default).",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


ORDER_COLUMNS: Final = ("order_id", "customer", "card", "amount", "currency", "status")

ROWS_OUTPUT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "integer"},
                    "customer": {"type": "string"},
                    "card": {"type": "string"},
                    "amount": {"type": "number"},
                    "currency": {"type": "string"},
                    "status": {"type": "string"},
                },
                "required": list(ORDER_COLUMNS),
            },
        }
    },
    "required": ["rows"],
}


def orders(count: int = ROWS_COUNT, seed: int = 1729) -> list[dict[str, Any]]:
    """Return ``count`` fake orders, deterministic for ``seed``."""
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
    rows = []
    for i in range(count):
        customer = f"{rng.choice(first)} {rng.choice(last)}"
        amount = rng.randrange(100, 100_000) / 100
        card = rng.choice(TEST_CARDS)
        currency = rng.choice(currencies)
        rows.append(
            dict(
                zip(
                    ORDER_COLUMNS,
                    (100001 + i, customer, card, amount, currency, rng.choice(statuses)),
                    strict=True,
                )
            )
        )
    return rows


def orders_table(count: int = ROWS_COUNT, seed: int = 1729) -> str:
    """Return ``count`` rows of fake orders as CSV text, deterministic for ``seed``."""
    lines = [",".join(ORDER_COLUMNS)]
    for row in orders(count, seed):
        lines.append(
            f"{row['order_id']},{row['customer']},{row['card']},{row['amount']:.2f},{row['currency']},{row['status']}"
        )
    return "\n".join(lines) + "\n"


def _text_result(text: str) -> bytes:
    return _dumps({"content": [{"type": "text", "text": text}], "isError": False})


def rows_result(shape: str = "text", count: int = ROWS_COUNT) -> bytes:
    """The ``rows`` tool's result (``count`` orders) in one of :data:`ROWS_SHAPES`, serialized."""
    if shape == "text":
        return _text_result(orders_table(count))
    if shape == "items":
        lines = orders_table(count).splitlines()
        return _dumps({"content": [{"type": "text", "text": line} for line in lines], "isError": False})
    if shape == "structured":
        structured = {"rows": orders(count)}
        return _dumps(
            {
                "content": [{"type": "text", "text": _dumps(structured).decode()}],
                "structuredContent": structured,
                "isError": False,
            }
        )
    raise ValueError(f"unknown rows shape {shape!r}")


@dataclass
class Reply:
    """One HTTP answer: status, extra headers, and either a body or JSON-RPC messages.

    ``messages`` (when not ``None``) are the serialized JSON-RPC responses;
    the server sends them as one JSON body (a batch when ``batch``) or as SSE
    events.  Otherwise ``body`` is sent as is.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    messages: list[bytes] | None = None
    batch: bool = False

    def json_body(self) -> bytes:
        if self.messages is None:
            return self.body
        return b"[" + b",".join(self.messages) + b"]" if self.batch else self.messages[0]


class McpEndpoint:
    """The MCP logic shared by both servers: one HTTP request in, one response out."""

    def __init__(self, rows_shape: str = "text", rows_count: int = ROWS_COUNT) -> None:
        self.sessions: set[str] = set()
        tools = TOOLS
        if rows_shape == "structured":
            tools = [
                {**tool, "outputSchema": ROWS_OUTPUT_SCHEMA} if tool["name"] == "rows" else tool
                for tool in TOOLS
            ]
        self._results: dict[str, bytes] = {
            "tools/list": _dumps({"tools": tools}),
            "ping": b"{}",
        }
        self._tool_results: dict[str, bytes] = {
            "small": _text_result("ok"),
            "rows": rows_result(rows_shape, rows_count),
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
        """Answer one HTTP request as a JSON body; ``headers`` has lower-case names."""
        reply = self.reply(method, headers, body)
        if reply.messages is None:
            return reply.status, reply.headers, reply.body
        return reply.status, [("content-type", "application/json"), *reply.headers], reply.json_body()

    def reply(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request; the JSON-RPC responses are left for the server to frame."""
        if method == "GET":
            return Reply(405, [("allow", "POST, DELETE")])
        if method == "DELETE":
            self.sessions.discard(headers.get("mcp-session-id", ""))
            return Reply(200)
        if method != "POST":
            return Reply(405, [("allow", "GET, POST, DELETE")])
        try:
            message = json.loads(body)
        except ValueError:
            return Reply(
                400, [("content-type", "application/json")], self._error(None, -32700, "Parse error")
            )
        messages = message if isinstance(message, list) else [message]
        if not messages or not all(isinstance(m, dict) for m in messages):
            return Reply(
                400, [("content-type", "application/json")], self._error(None, -32600, "Invalid Request")
            )

        extra: list[tuple[str, str]] = []
        if any(m.get("method") == "initialize" for m in messages):
            session_id = uuid.uuid4().hex
            self.sessions.add(session_id)
            extra.append(("mcp-session-id", session_id))
        else:
            session_id = headers.get("mcp-session-id", "")
            if not session_id:
                return Reply(
                    400,
                    [("content-type", "application/json")],
                    self._error(None, -32600, "Missing session id"),
                )
            if session_id not in self.sessions:
                return Reply(
                    404,
                    [("content-type", "application/json")],
                    self._error(None, -32001, "Session not found"),
                )

        replies = [self._reply(m) for m in messages if "id" in m and "method" in m]
        if not replies:
            return Reply(202, extra)
        return Reply(200, extra, messages=replies, batch=isinstance(message, list))

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


def _chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` framed as HTTP chunks of at most ``size`` bytes (all of it in one when ``size`` is 0)."""
    step = size or len(data) or 1
    return [
        b"%x\r\n" % len(piece) + piece + b"\r\n"
        for piece in (data[i : i + step] for i in range(0, len(data), step))
    ]


def sse_event(message: bytes) -> bytes:
    """One JSON-RPC message as an SSE ``message`` event, framed as sse-starlette does (CRLF)."""
    return b"event: message\r\ndata: " + message + b"\r\n\r\n"


class _HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parses pipelined requests, answers each at once."""

    def __init__(
        self, endpoint: McpEndpoint, fmt: str = "json", chunk_size: int = 0, nagle: bool = False
    ) -> None:
        self._endpoint = endpoint
        self._nagle = nagle
        self._format = fmt
        self._chunk_size = chunk_size
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._nagle:  # asyncio sets TCP_NODELAY on every TCP socket; --nagle takes it off again
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

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

        reply = self._endpoint.reply(method, headers, body)
        close = headers.get("connection", "").lower() == "close" or parts[2] == "HTTP/1.0"
        self._send(reply, close)
        if close:
            assert self._transport is not None
            self._transport.close()
            self._transport = None
        return end

    def _send(self, reply: Reply, close: bool) -> None:
        """Write ``reply``: one write for a plain body, else as ``--format`` and ``--chunk-size`` say."""
        transport = self._transport
        assert transport is not None
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}"]
        extra = [f"{name}: {value}" for name, value in reply.headers]
        if close:
            extra.append("connection: close")
        if reply.messages is not None and self._format == "sse":
            # As the Python SDK on uvicorn + sse-starlette: the head goes out before the result
            # exists, then one chunk per event, then the last chunk: separate writes.
            head += ["content-type: text/event-stream", "cache-control: no-cache, no-transform"]
            head += ["transfer-encoding: chunked", *extra]
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for message in reply.messages:
                for chunk in _chunks(sse_event(message), self._chunk_size):
                    transport.write(chunk)
            transport.write(b"0\r\n\r\n")
            return
        payload = reply.json_body()
        if reply.messages is not None:
            head.append("content-type: application/json")
        if reply.messages is not None and self._chunk_size:
            head += ["transfer-encoding: chunked", *extra]
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for chunk in _chunks(payload, self._chunk_size):
                transport.write(chunk)
            transport.write(b"0\r\n\r\n")
            return
        head += [f"content-length: {len(payload)}", *extra]
        transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve_raw(
    host: str,
    port: int,
    ready: Callable[[int], None],
    *,
    fmt: str = "json",
    chunk_size: int = 0,
    nagle: bool = False,
    rows_shape: str = "text",
    rows_count: int = ROWS_COUNT,
) -> None:
    """Serve the endpoint with the asyncio server until cancelled or signalled."""
    endpoint = McpEndpoint(rows_shape, rows_count)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _HttpProtocol(endpoint, fmt, chunk_size, nagle), host, port, backlog=128
    )
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

    def __init__(self, rows_shape: str = "text", rows_count: int = ROWS_COUNT) -> None:
        self.endpoint = McpEndpoint(rows_shape, rows_count)

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


async def serve_asgi(
    host: str,
    port: int,
    ready: Callable[[int], None],
    *,
    rows_shape: str = "text",
    rows_count: int = ROWS_COUNT,
    **_: object,
) -> None:
    """Serve the endpoint under uvicorn until signalled (always as JSON bodies)."""
    import uvicorn

    config = uvicorn.Config(
        AsgiApp(rows_shape, rows_count),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
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
        "--format", choices=FORMATS, default="json", help="wire format of JSON-RPC responses (raw only)"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=0, help="send bodies in HTTP chunks of this many bytes (raw only)"
    )
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="clear TCP_NODELAY on accepted sockets (raw only; a diagnostic: it adds ~40 ms stalls)",
    )
    parser.add_argument("--rows-shape", choices=ROWS_SHAPES, default="text", help="shape of the rows result")
    parser.add_argument(
        "--rows-count", type=int, default=ROWS_COUNT, help=f"orders in rows (default {ROWS_COUNT})"
    )
    parser.add_argument(
        "--exit-with-stdin", action="store_true", help="stop when stdin reaches EOF (its parent is gone)"
    )
    args = parser.parse_args(argv)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_on_stdin_eof, name="stdin-watch", daemon=True).start()

    def ready(port: int) -> None:
        sys.stdout.write(f"READY {port}\n")
        sys.stdout.flush()

    if args.server == "asgi" and (args.format != "json" or args.chunk_size or args.nagle):
        parser.error("--format sse, --chunk-size and --nagle need --server raw")
    if args.chunk_size < 0:
        parser.error("--chunk-size must be positive (0: whole bodies)")
    if args.rows_count < 1:
        parser.error("--rows-count must be at least 1")
    serve = serve_asgi if args.server == "asgi" else serve_raw
    asyncio.run(
        serve(
            args.host,
            args.port,
            ready,
            fmt=args.format,
            chunk_size=args.chunk_size,
            nagle=args.nagle,
            rows_shape=args.rows_shape,
            rows_count=args.rows_count,
        )
    )


if __name__ == "__main__":
    main()
