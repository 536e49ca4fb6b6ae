"""The OAuth 2.0 device authorization grant (RFC 8628): a code for the person, polling for their sign-in.

How the code reaches the person is the prompt's business (a terminal, or the MCP client in-band); this module
keeps to the protocol: `authorization_pending` waits, `slow_down` adds 5 s to the interval for good,
`expired_token` and `access_denied` end it, a network error is retried until the code expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx

from relay.auth.discovery import ProviderMetadata
from relay.auth.oauth import OAuthError, TokenResponse, post_form
from relay.config import IdentityConfig
from relay.errors import AuthError

log = logging.getLogger("relay.auth")

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class DeviceCode:
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float  # monotonic clock
    interval: float

    @property
    def url(self) -> str:
        """The URL to open: with the code filled in when the provider offers that."""
        return self.verification_uri_complete or self.verification_uri


class DevicePrompt(Protocol):
    async def show(self, code: DeviceCode) -> None: ...

    async def finished(self, ok: bool) -> None: ...


Sleep = Callable[[float], Awaitable[None]]


async def device_login(http: httpx.AsyncClient, meta: ProviderMetadata, identity: IdentityConfig,
                       prompt: DevicePrompt, *, resources: list[str] | None = None,
                       sleep: Sleep = anyio.sleep) -> TokenResponse:
    """`resources` (RFC 8707): servers the login will later ask access tokens for by resource indicator."""
    if meta.device_authorization_endpoint is None:
        raise AuthError(f"the provider {meta.issuer} does not offer the device flow",
                        hint="its discovery document has no device_authorization_endpoint")
    form: dict[str, str | list[str]] = {"client_id": identity.client_id, "scope": " ".join(identity.scopes)}
    if resources:
        form["resource"] = resources
    body = await post_form(http, meta.device_authorization_endpoint, form)
    try:
        device_code = str(body["device_code"])
        code = DeviceCode(
            user_code=str(body["user_code"]), verification_uri=str(body["verification_uri"]),
            verification_uri_complete=(str(body["verification_uri_complete"])
                                       if body.get("verification_uri_complete") else None),
            expires_at=time.monotonic() + float(body.get("expires_in", 600)),
            interval=max(1.0, float(body.get("interval", 5))),
        )
    except (KeyError, TypeError, ValueError):
        raise AuthError("the provider's device authorization answer is incomplete") from None
    await prompt.show(code)
    ok = False
    try:
        tokens = await _poll(http, meta, identity, device_code, code, sleep)
        ok = True
        return tokens
    finally:
        with anyio.CancelScope(shield=True):
            await prompt.finished(ok)


async def _poll(http: httpx.AsyncClient, meta: ProviderMetadata, identity: IdentityConfig, device_code: str,
                code: DeviceCode, sleep: Sleep) -> TokenResponse:
    interval = code.interval
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": identity.client_id}
    while True:
        await sleep(interval)
        if time.monotonic() >= code.expires_at:
            raise AuthError("the sign-in code expired before the sign-in finished", hint="run the login again")
        try:
            return TokenResponse.parse(await post_form(http, meta.token_endpoint, form), meta.token_endpoint)
        except OAuthError as exc:
            if exc.code == "authorization_pending":
                continue
            if exc.code == "slow_down":
                interval += 5.0  # RFC 8628 3.5: and it stays slower
                continue
            if exc.code == "expired_token":
                raise AuthError("the sign-in code expired before the sign-in finished",
                                hint="run the login again") from None
            if exc.code == "access_denied":
                raise AuthError("the sign-in was denied at the provider") from None
            raise
        except AuthError as exc:
            # A network hiccup is not the person's fault: keep polling while the code is valid.
            log.warning("%s; retrying", exc)
