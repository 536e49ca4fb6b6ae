"""An OAuth-protected MCP server (official ``mcp`` SDK) that trusts one OpenID provider's JWT access tokens.

Usage::

    python tests/servers/protected_server.py --issuer http://127.0.0.1:P [--port N] [--required-scope S ...]
                                             [--exit-on-stdin-eof]

Serves Streamable HTTP at ``http://127.0.0.1:PORT/mcp`` (``--port 0``, the default, picks a free
port) and, once it accepts connections, writes ``READY http://127.0.0.1:PORT/mcp`` to stderr.

Every ``/mcp`` request must carry ``Authorization: Bearer <JWT>``: an RFC 9068 access token
(header ``typ: at+jwt``, RS256/ES256/EdDSA) signed by a key in the issuer's JWKS (found through
``ISSUER/.well-known/openid-configuration`` and fetched again when an unknown ``kid`` shows up),
with ``iss`` == the issuer, ``aud`` == this server's URL (the RFC 8707 resource) and ``exp`` in the
future. Anything else gets ``401`` with ``WWW-Authenticate: Bearer error="invalid_token", ...,
resource_metadata="http://127.0.0.1:PORT/.well-known/oauth-protected-resource/mcp"``; a valid token
lacking a ``--required-scope`` gets ``403 insufficient_scope``. RFC 9728 metadata (``resource``,
``authorization_servers: [issuer]``) is served at that path and at the bare
``/.well-known/oauth-protected-resource``.

Tool ``whoami()``: returns JSON text ``{"sub", "client_id", "scope", "aud", "jti", "act"}`` from the
token that reached the server, so tests see which identity came through.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import warnings
from typing import Any

import anyio
import httpx
import jwt
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# validate_token_resource is set explicitly below; the SDK's 3.0 deprecation notice is not for us.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

ALGORITHMS = ["RS256", "ES256", "EdDSA"]


class JwtAccessTokenVerifier:
    """The SDK's TokenVerifier for JWT access tokens from one issuer, audience-bound to one resource."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self._keys: jwt.PyJWKSet | None = None

    async def _fetch_keys(self) -> jwt.PyJWKSet:
        async with httpx.AsyncClient(timeout=5.0) as client:
            discovery = (await client.get(f"{self.issuer}/.well-known/openid-configuration")).raise_for_status()
            jwks = (await client.get(discovery.json()["jwks_uri"])).raise_for_status()
        return jwt.PyJWKSet.from_dict(jwks.json())

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        for refresh in (False, True):
            if self._keys is None or refresh:
                self._keys = await self._fetch_keys()
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key
        raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the issuer's JWKS")

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
                return None
            key = await self._key(header.get("kid"))
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.resource,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except (jwt.PyJWTError, httpx.HTTPError, KeyError, ValueError):
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.resource,
            subject=str(claims["sub"]),
            claims=claims,
        )


def build_server(issuer: str, resource: str, required_scopes: list[str]) -> MCPServer:
    server = MCPServer(
        "relay-test-protected-server",
        version="1.0.0",
        log_level="WARNING",
        token_verifier=JwtAccessTokenVerifier(issuer, resource),
        # model_validate keeps a path-less issuer without a trailing slash (RFC 8414 compares exactly).
        auth=AuthSettings.model_validate(
            {
                "issuer_url": issuer,
                "resource_server_url": resource,
                "required_scopes": required_scopes or None,
                "validate_token_resource": True,
            }
        ),
    )

    @server.tool(structured_output=False)
    def whoami() -> str:
        """Who the bearer token says the caller is."""
        token = get_access_token()
        claims = (token.claims or {}) if token else {}
        return json.dumps({name: claims.get(name) for name in ("sub", "client_id", "scope", "aud", "jti", "act")})

    async def bare_metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "resource": resource,
                "authorization_servers": [issuer],
                "scopes_supported": required_scopes or None,
                "bearer_methods_supported": ["header"],
            }
        )

    server.custom_route("/.well-known/oauth-protected-resource", methods=["GET"])(bare_metadata)
    return server


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"

    mcp = build_server(args.issuer.rstrip("/"), url, args.required_scope)
    app = mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1))

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
            await anyio.sleep(0.01)
        print(f"READY {url}", file=sys.stderr, flush=True)

    async def exit_with_stdin() -> None:
        await anyio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        server.should_exit = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        if args.exit_on_stdin_eof:
            tg.start_soon(exit_with_stdin)
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True, help="the OpenID provider whose tokens are accepted")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port (see the READY line)")
    parser.add_argument("--required-scope", action="append", default=[], help="scope every token must carry")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when stdin closes (so a test's server never outlives it)")
    anyio.run(serve, parser.parse_args(argv))


if __name__ == "__main__":
    main()
