"""A small, real HTTP server on loopback that misbehaves on purpose (401s, 5xx, odd content types).

It is not a mock of relay's HTTP client: relay talks to it over a real socket. It exists because no
well-behaved MCP server can be made to answer 401 or 500 on demand.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (method, parsed JSON body or None, headers) -> (status, headers, body bytes)
Responder = Callable[[str, Any, dict[str, str]], tuple[int, dict[str, str], bytes]]


def jsonrpc_ok(id_: Any, result: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"content-type": "application/json"}, json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode()


def simple_mcp(method: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Enough of a Streamable HTTP MCP server for the happy path of a test."""
    if method != "POST":
        return 405, {}, b""
    if "id" not in body:
        return 202, {}, b""
    m = body.get("method")
    if m == "initialize":
        status, h, b = jsonrpc_ok(body["id"], {"protocolVersion": body["params"]["protocolVersion"],
                                              "capabilities": {"tools": {}},
                                              "serverInfo": {"name": "stub", "version": "1"}})
        return status, {**h, "mcp-session-id": "stub-session"}, b
    if m == "tools/call":
        return jsonrpc_ok(body["id"], {"content": [{"type": "text", "text": "called"}]})
    return jsonrpc_ok(body["id"], {})


@contextmanager
def http_stub(responder: Responder) -> Iterator[tuple[str, list[tuple[str, Any, dict[str, str]]]]]:
    """Serve `responder` on 127.0.0.1; yields (url of /mcp, log of requests seen)."""
    seen: list[tuple[str, Any, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.append((self.command, body, headers))
            status, out_headers, out = responder(self.command, body, headers)
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp", seen
    finally:
        server.shutdown()
        server.server_close()
