"""Where a provider's endpoints are: OpenID Connect discovery, RFC 8414 metadata, RFC 9728 resource metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from relay.auth.oauth import get_json
from relay.errors import AuthError


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    token_endpoint: str
    jwks_uri: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None


async def discover(http: httpx.AsyncClient, issuer: str) -> ProviderMetadata:
    """OpenID Connect discovery, then RFC 8414; the document must name the issuer we asked for."""
    issuer = issuer.rstrip("/")
    parts = urlsplit(issuer)
    candidates = [f"{issuer}/.well-known/openid-configuration"]
    # RFC 8414: the well-known segment goes between the host and the issuer's path.
    candidates.append(f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}")
    last: AuthError | None = None
    for url in candidates:
        try:
            doc = await get_json(http, url, "discovery document")
        except AuthError as exc:
            last = exc
            if "cannot reach" in str(exc):
                raise
            continue
        if str(doc.get("issuer", "")).rstrip("/") != issuer:
            raise AuthError(f"the discovery document at {url} names issuer {doc.get('issuer')!r}, not {issuer!r}")
        token = doc.get("token_endpoint")
        if not isinstance(token, str):
            raise AuthError(f"the discovery document at {url} has no token endpoint")
        return ProviderMetadata(issuer=issuer, token_endpoint=token, jwks_uri=_opt(doc, "jwks_uri"),
                                device_authorization_endpoint=_opt(doc, "device_authorization_endpoint"),
                                revocation_endpoint=_opt(doc, "revocation_endpoint"),
                                userinfo_endpoint=_opt(doc, "userinfo_endpoint"))
    assert last is not None
    raise last


def _opt(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')


async def issuer_of_resource(http: httpx.AsyncClient, url: str) -> str:
    """RFC 9728: the authorization server a protected MCP server names in its resource metadata, found through
    the `WWW-Authenticate` of a 401 to an unauthenticated request, else at the well-known location."""
    metadata_url: str | None = None
    try:
        resp = await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "ping"},
                               headers={"accept": "application/json, text/event-stream"})
    except httpx.HTTPError as exc:
        raise AuthError(f"cannot reach {url} to find its authorization server: {type(exc).__name__}") from None
    if resp.status_code == 401:
        m = _RESOURCE_METADATA.search(resp.headers.get("www-authenticate", ""))
        metadata_url = m.group(1) if m else None
    if metadata_url is None:
        parts = urlsplit(url)
        metadata_url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    doc = await get_json(http, metadata_url, "protected-resource metadata")
    servers = doc.get("authorization_servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], str):
        return servers[0].rstrip("/")
    raise AuthError(f"{url}'s protected-resource metadata names no authorization server",
                    hint="set the identity's 'issuer' in the config")
