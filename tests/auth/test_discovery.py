"""relay.auth.discovery: OpenID Connect discovery first, RFC 8414 metadata as the fallback, and the issuer check.

oidc-provider always publishes OIDC discovery, so the fallback is tested against a small real HTTP server on
loopback that publishes only RFC 8414 metadata (a stand-in for OAuth-only authorization servers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from relay.auth import oauth
from relay.auth.discovery import discover
from relay.errors import AuthError

pytestmark = pytest.mark.anyio


@contextmanager
def metadata_server(documents: dict[str, dict[str, object]]) -> Iterator[str]:
    """Serves `documents` by path (with "{base}" replaced by the server's base URL); 404 elsewhere."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = documents.get(self.path)
            body = json.dumps(doc).replace("{base}", base).encode() if doc is not None else b"{}"
            self.send_response(200 if doc is not None else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


async def test_rfc8414_metadata_when_there_is_no_oidc_discovery() -> None:
    doc = {"issuer": "{base}/tenant", "token_endpoint": "{base}/tenant/token",
           "device_authorization_endpoint": "{base}/tenant/device"}
    with metadata_server({"/.well-known/oauth-authorization-server/tenant": doc}) as base:
        async with oauth.client() as http:
            meta = await discover(http, f"{base}/tenant")
    assert (meta.issuer, meta.token_endpoint, meta.device_authorization_endpoint, meta.jwks_uri) == (
        f"{base}/tenant", f"{base}/tenant/token", f"{base}/tenant/device", None)


async def test_a_document_for_another_issuer_is_refused() -> None:
    doc = {"issuer": "https://evil.example", "token_endpoint": "https://evil.example/token"}
    with metadata_server({"/.well-known/openid-configuration": doc}) as base:
        async with oauth.client() as http:
            with pytest.raises(AuthError, match=r"names issuer 'https://evil\.example'"):
                await discover(http, base)


async def test_no_metadata_at_all_is_a_clear_error() -> None:
    with metadata_server({}) as base:
        async with oauth.client() as http:
            with pytest.raises(AuthError, match="answered HTTP 404"):
                await discover(http, base)
