"""The OAuth 2.0 wire: form POSTs to a provider's endpoints and their errors, translated into relay's own.

No token, secret or code ever reaches an exception message or a log line from here: errors name the endpoint
and the provider's error code (and its description, which providers write for people, not secrets).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from relay import __version__
from relay.errors import AuthError

USER_AGENT = f"mcp-pci-relay/{__version__}"
TIMEOUT = httpx.Timeout(15.0, connect=10.0)


class OAuthError(AuthError):
    """The provider answered with an OAuth error (RFC 6749 section 5.2)."""

    def __init__(self, code: str, description: str | None, endpoint: str) -> None:
        text = f"the identity provider refused: {code}" + (f" ({description})" if description else "")
        super().__init__(text)
        self.code = code
        self.description = description
        self.endpoint = endpoint


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    token_type: str
    expires_at: float | None  # epoch seconds
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None
    issued_token_type: str | None = None
    refresh_expires_at: float | None = None  # when the provider says (Keycloak's refresh_expires_in, ...)

    @classmethod
    def parse(cls, body: Mapping[str, Any], endpoint: str) -> TokenResponse:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"the identity provider's answer from {endpoint} has no access token")
        expires_in = body.get("expires_in")
        expires_at = time.time() + float(expires_in) if isinstance(expires_in, (int, float)) else None
        refresh_in = body.get("refresh_expires_in", body.get("refresh_token_expires_in"))
        refresh_at = time.time() + float(refresh_in) if isinstance(refresh_in, (int, float)) and refresh_in else None
        return cls(
            access_token=token, token_type=str(body.get("token_type", "Bearer")), expires_at=expires_at,
            refresh_token=body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None,
            id_token=body.get("id_token") if isinstance(body.get("id_token"), str) else None,
            scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
            issued_token_type=body.get("issued_token_type") if isinstance(body.get("issued_token_type"), str) else None,
            refresh_expires_at=refresh_at,
        )


def client() -> httpx.AsyncClient:
    # No redirects (a token request must not be replayed elsewhere), no proxies or .netrc from the environment.
    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False,
                             headers={"user-agent": USER_AGENT, "accept": "application/json"})


async def get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        resp = await http.get(url)
    except httpx.HTTPError as exc:
        raise AuthError(f"cannot reach the identity provider for its {what} at {url}: {_why(exc)}") from None
    if resp.status_code != 200:
        raise AuthError(f"the identity provider's {what} at {url} answered HTTP {resp.status_code}")
    return _json(resp, url)


async def post_form(http: httpx.AsyncClient, url: str, data: Mapping[str, str | list[str]],
                    auth: tuple[str, str] | None = None, *, expect_json: bool = True) -> dict[str, Any]:
    """POST a form; the JSON answer, or OAuthError for an OAuth error answer, AuthError for anything else."""
    try:
        if auth is None:
            resp = await http.post(url, data=dict(data))
        else:
            resp = await http.post(url, data=dict(data), auth=httpx.BasicAuth(*auth))
    except httpx.HTTPError as exc:
        raise AuthError(f"cannot reach the identity provider at {url}: {_why(exc)}") from None
    body = _json(resp, url) if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code >= 400 or "error" in body:
        code = body.get("error")
        if isinstance(code, str):
            desc = body.get("error_description")
            raise OAuthError(code, desc if isinstance(desc, str) else None, url)
        raise AuthError(f"the identity provider at {url} answered HTTP {resp.status_code}")
    if not body and expect_json:
        raise AuthError(f"the identity provider at {url} did not answer with JSON")
    return body


def _json(resp: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        raise AuthError(f"the identity provider at {url} did not answer with JSON") from None
    if not isinstance(body, dict):
        raise AuthError(f"the identity provider at {url} did not answer with a JSON object")
    return body


def _why(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
