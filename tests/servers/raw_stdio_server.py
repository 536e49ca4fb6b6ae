r"""Byte-exact stdio "MCP server" for robustness tests (stdlib only).

Run: ``python tests/servers/raw_stdio_server.py``

Wire behaviour
--------------
* Reads newline-delimited JSON-RPC from stdin (one message per ``\n``-terminated
  line; a trailing ``\r`` is ignored; blank lines are skipped). Messages are
  handled strictly one at a time, in arrival order; a handler that sleeps
  blocks the next message.
* Every write goes to ``sys.stdout.buffer`` and is flushed immediately.
  Well-formed replies are compact JSON (``separators=(",", ":")``, non-ASCII
  kept as UTF-8) followed by a single ``\n``.
* EOF on stdin -> exit code 0. Nothing is ever written to stderr unless a
  tool asks for it (``stderr_hex``).
* A line that is not valid JSON -> ``{"jsonrpc":"2.0","id":null,"error":
  {"code":-32700,"message":"Parse error"}}``. A JSON array (batch) or any other
  non-object -> the same shape with ``-32600`` "Invalid Request".
* Notifications (no ``id``) and responses (``result``/``error``) are ignored.

Methods
-------
``initialize``
    Result ``{"protocolVersion": V, "capabilities": {"tools": {}},
    "serverInfo": {"name": "raw-stdio-server", "version": "1.0.0"}}`` where V
    is the client's ``params.protocolVersion`` if it is one of 2024-11-05,
    2025-03-26, 2025-06-18, 2025-11-25, else 2025-11-25. (2026-07-28 is not
    spoken: ``server/discover`` gets -32601, so SDK clients in ``auto`` mode fall
    back to ``initialize``.)
``ping``
    Result ``{}``.
``tools/list``
    Result ``{"tools": [...]}`` describing the tools below.
anything else
    Error ``-32601`` "Method not found".

Tools (``tools/call``; unknown tool -> error ``-32602``)
-------------------------------------------------------
``echo(text)``
    Result ``{"content": [{"type": "text", "text": text}]}``.
``reply_bytes(hex, then="nothing", code=0, chunk_delay_ms=0, stderr_hex=None)``
    Writes exactly the bytes ``bytes.fromhex(hex)`` to stdout, except that every
    occurrence of the literal bytes ``{{ID}}`` is replaced by the JSON encoding
    of this request's id (so a test can build a correct response even when a
    relay rewrites ids). ``hex`` may also be a list of hex strings: each chunk
    is written and flushed separately, with ``chunk_delay_ms`` between chunks
    (to split a line across reads). No newline is added. ``stderr_hex``, if
    given, is written to stderr first. Then, depending on ``then``:

    - ``"nothing"``: write nothing more; the request stays unanswered unless
      the bytes answered it.
    - ``"response"``: write a valid result for this request:
      ``{"content": [{"type": "text", "text": "after bytes"}]}``.
    - ``"error"``: write a JSON-RPC error for this request (``-32603``,
      "after bytes").
    - ``"exit"``: exit immediately with ``code``.
``huge(bytes)``
    Writes one valid JSON-RPC response to this request whose JSON text is
    exactly ``bytes`` bytes long (ASCII; one ``\n`` follows, not counted):
    ``{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"xxxx..."}]}}``.
    Too small a size for the envelope -> error ``-32602`` naming the minimum.
``die(code=1)``
    Exits immediately with ``code`` without answering.
``sleep(seconds)``
    Sleeps, then answers with text ``"slept"``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, NoReturn

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
ID_PLACEHOLDER = b"{{ID}}"

_OUT = sys.stdout.buffer

TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "description": "Return the text.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
    {
        "name": "reply_bytes",
        "description": "Write exact bytes to stdout, then optionally respond/error/exit.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "hex": {
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                    "description": "Hex of the bytes to write; {{ID}} is replaced by the request id.",
                },
                "then": {"type": "string", "enum": ["nothing", "response", "error", "exit"]},
                "code": {"type": "integer"},
                "chunk_delay_ms": {"type": "integer"},
                "stderr_hex": {"type": "string"},
            },
            "required": ["hex"],
        },
    },
    {
        "name": "huge",
        "description": "Answer with a single JSON line of exactly `bytes` bytes.",
        "inputSchema": {
            "type": "object",
            "properties": {"bytes": {"type": "integer"}},
            "required": ["bytes"],
        },
    },
    {
        "name": "die",
        "description": "Exit immediately with the given code.",
        "inputSchema": {"type": "object", "properties": {"code": {"type": "integer"}}},
    },
    {
        "name": "sleep",
        "description": "Sleep, then answer 'slept'.",
        "inputSchema": {
            "type": "object",
            "properties": {"seconds": {"type": "number"}},
            "required": ["seconds"],
        },
    },
]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def write(data: bytes) -> None:
    _OUT.write(data)
    _OUT.flush()


def send(message: dict[str, Any]) -> None:
    write(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def exit_now(code: int) -> NoReturn:
    _OUT.flush()
    sys.stderr.flush()
    os._exit(code)


def reply_bytes(request_id: Any, args: dict[str, Any]) -> dict[str, Any] | None:
    chunks = args.get("hex")
    if isinstance(chunks, str):
        chunks = [chunks]
    if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
        raise RpcError(-32602, "reply_bytes: 'hex' must be a string or a list of strings")
    try:
        payloads = [bytes.fromhex(c) for c in chunks]
        stderr_bytes = bytes.fromhex(args["stderr_hex"]) if args.get("stderr_hex") else b""
    except ValueError as exc:
        raise RpcError(-32602, f"reply_bytes: bad hex: {exc}") from None
    then = args.get("then", "nothing")
    if then not in ("nothing", "response", "error", "exit"):
        raise RpcError(-32602, f"reply_bytes: unknown 'then' {then!r}")
    delay = float(args.get("chunk_delay_ms", 0)) / 1000.0
    id_bytes = json.dumps(request_id).encode("utf-8")

    if stderr_bytes:
        sys.stderr.buffer.write(stderr_bytes)
        sys.stderr.buffer.flush()
    for i, payload in enumerate(payloads):
        if i and delay:
            time.sleep(delay)
        write(payload.replace(ID_PLACEHOLDER, id_bytes))

    if then == "response":
        return text_result("after bytes")
    if then == "error":
        raise RpcError(-32603, "after bytes")
    if then == "exit":
        exit_now(int(args.get("code", 0)))
    return None


def huge(request_id: Any, args: dict[str, Any]) -> None:
    size = args.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool):
        raise RpcError(-32602, "huge: 'bytes' must be an integer")
    head = b'{"jsonrpc":"2.0","id":' + json.dumps(request_id).encode("utf-8")
    head += b',"result":{"content":[{"type":"text","text":"'
    tail = b'"}]}}'
    minimum = len(head) + len(tail)
    if size < minimum:
        raise RpcError(-32602, f"huge: 'bytes' must be at least {minimum} for this request id")
    write(head + b"x" * (size - minimum) + tail + b"\n")


def call_tool(request_id: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """Return a result to send, or None when the tool already wrote (or will never write) its answer."""
    name = params.get("name")
    args = params.get("arguments") or {}
    if not isinstance(args, dict):
        raise RpcError(-32602, "arguments must be an object")
    if name == "echo":
        return text_result(str(args.get("text", "")))
    if name == "reply_bytes":
        return reply_bytes(request_id, args)
    if name == "huge":
        huge(request_id, args)
        return None
    if name == "die":
        exit_now(int(args.get("code", 1)))
    if name == "sleep":
        time.sleep(float(args.get("seconds", 0)))
        return text_result("slept")
    raise RpcError(-32602, f"Unknown tool: {name}")


def handle(message: dict[str, Any]) -> None:
    if "method" not in message or "id" not in message:
        return  # notification or response: ignored
    request_id = message["id"]
    method = message["method"]
    params = message.get("params") or {}
    try:
        if not isinstance(params, dict):
            raise RpcError(-32602, "params must be an object")
        result: dict[str, Any] | None
        if method == "initialize":
            requested = params.get("protocolVersion")
            version = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
            result = {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw-stdio-server", "version": "1.0.0"},
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            result = call_tool(request_id, params)
        else:
            raise RpcError(-32601, "Method not found")
    except RpcError as exc:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": exc.message}})
        return
    if result is not None:
        send({"jsonrpc": "2.0", "id": request_id, "result": result})


def main() -> None:
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        line = line.rstrip(b"\n").rstrip(b"\r")
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            continue
        if not isinstance(message, dict):
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}})
            continue
        handle(message)
    exit_now(0)


if __name__ == "__main__":
    main()
