"""What the HTTP upstream transports share: the client, headers, status diagnosis, error translation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from relay import __version__
from relay.errors import AuthError, GrantLost, UpstreamError
from relay.jsonrpc import REQUEST_TOO_LARGE, UPSTREAM_ERROR
from relay.transports import Fault
from relay.transports.h1 import ConnectFailed, HttpClient, Response

USER_AGENT = f"mcp-pci-relay/{__version__}"
SESSION_HEADER = "mcp-session-id"
PROTOCOL_HEADER = "mcp-protocol-version"


class Credentials(Protocol):
    """What an upstream request carries as `Authorization` (an identity's grant); the transports never see it."""

    async def authorization(self) -> str: ...

    async def rejected(self, value: str) -> None:
        """The server answered 401 to `value`: the next `authorization()` must be a fresh one."""


class AuthorizedClient(HttpClient):
    """An HttpClient that sends the current grant with every request and, on a 401, retries once with a new one."""

    def __init__(self, headers: Mapping[str, str], credentials: Credentials) -> None:
        super().__init__(headers)
        self._credentials = credentials

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        value = await self._authorization(url)
        resp = await super().request(method, url, {**headers, "authorization": value}, body)
        if resp.status_code != 401:
            return resp
        await resp.aclose()
        await self._credentials.rejected(value)
        again = await self._authorization(url)
        return await super().request(method, url, {**headers, "authorization": again}, body)

    async def _authorization(self, url: str) -> str:
        try:
            return await self._credentials.authorization()
        except AuthError as exc:
            # The session cannot go on without a grant: end it as an upstream failure (pending requests get
            # errors, the transcript is sealed), with the identity's exit code.
            raise GrantLost(f"no grant for {url} any more: {exc}") from None


def make_client(headers: Mapping[str, str], credentials: Credentials | None = None) -> HttpClient:
    base = {"user-agent": USER_AGENT, **headers}
    return HttpClient(base) if credentials is None else AuthorizedClient(base, credentials)


def too_large_fault(limit: int, ids: tuple[Any, ...]) -> Fault:
    return Fault(f"upstream response larger than the limit of {limit} bytes; dropped", REQUEST_TOO_LARGE, ids)


_AUTH_PARAM = re.compile(r'(\w+)="?([^",]*)"?')


def status_error(url: str, resp: Response) -> UpstreamError | None:
    """An error that ends the session for statuses that concern every request, else None."""
    status = resp.status_code
    if status == 401:
        params = dict(_AUTH_PARAM.findall(resp.headers.get("www-authenticate", "")))
        hint = "the server wants credentials"
        if "resource_metadata" in params:
            hint += f"; its protected-resource metadata is at {params['resource_metadata']}"
        return UpstreamError(f"upstream {url} answered 401 Unauthorized", hint=hint + "; add an identity or headers in the config")
    if status == 403:
        return UpstreamError(f"upstream {url} answered 403 Forbidden", hint="the credentials in use are not allowed to use this server")
    return None


def status_fault(url: str, resp: Response, ids: tuple[Any, ...]) -> Fault:
    reason = resp.reason_phrase or "error"
    return Fault(f"upstream {url} answered HTTP {resp.status_code} {reason}", UPSTREAM_ERROR, ids)


def unreachable(url: str, exc: Exception) -> UpstreamError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectFailed):
        return UpstreamError(f"upstream {url} is unreachable: {detail}")
    return UpstreamError(f"connection to upstream {url} failed: {detail}")
