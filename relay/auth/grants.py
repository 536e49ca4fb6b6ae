"""Short-lived, audience-bound grants per server: what relay sends upstream as `Authorization`.

A grant is obtained by token exchange (RFC 8693) of the identity's subject token, or as an access token for the
server's resource (RFC 8707). It lives in memory only, is capped at the configured lifetime even when the
provider grants longer, is renewed in the background before it expires (a request meanwhile still uses the
valid one), and is obtained afresh once when the server answers 401. A request never waits for more than the
one token round trip in flight. What is recorded about a grant is its metadata, never the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from relay.auth.login import ACCESS_TOKEN_TYPE, Login
from relay.auth.oauth import OAuthError, TokenResponse
from relay.config import GrantConfig
from relay.errors import AuthError

log = logging.getLogger("relay.auth")

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
RENEW_AT = 0.8  # of the grant's life: renew in the background from here on


class Grant:
    def __init__(self, login: Login, resource: str, config: GrantConfig, tg: TaskGroup,
                 on_grant: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.login = login
        self.resource = config.resource or resource
        self.config = config
        self._tg = tg
        self.on_grant = on_grant
        self._token: str | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0
        self._inflight: anyio.Event | None = None
        self._error: AuthError | None = None
        self.last: dict[str, Any] | None = None  # metadata of the current grant (no token)

    async def authorization(self) -> str:
        """The Authorization header value for the next request."""
        now = time.monotonic()
        if self._token is not None and now < self._expires_at:
            if now >= self._renew_at and self._inflight is None:
                self._start_renewal(background=True)  # this request goes with the still-valid grant
            return f"Bearer {self._token}"
        if self._inflight is None:
            self._start_renewal(background=False)
        assert self._inflight is not None
        await self._inflight.wait()
        if self._token is None or time.monotonic() >= self._expires_at:
            raise self._error or AuthError(f"no grant for {self.resource}")
        return f"Bearer {self._token}"

    async def rejected(self, value: str) -> None:
        """The server answered 401 to `value`: the next request gets a fresh grant (once per grant)."""
        if self._token is not None and value == f"Bearer {self._token}":
            log.info("the server refused the grant for %s; obtaining a new one", self.resource)
            self._token = None

    def _start_renewal(self, *, background: bool) -> None:
        event = anyio.Event()
        self._inflight = event

        async def renew() -> None:
            try:
                await self._obtain()
                self._error = None
            except AuthError as exc:
                self._error = exc  # a waiting request raises it; a background renewal only reports it
                if background:
                    log.warning("could not renew the grant for %s (retried at the next request): %s",
                                self.resource, exc)
            finally:
                self._inflight = None
                event.set()

        self._tg.start_soon(renew)

    async def _obtain(self) -> None:
        started = time.monotonic()
        tokens = await (self._exchange() if self.config.mode == "exchange" else self._for_resource())
        life = (tokens.expires_at - time.time()) if tokens.expires_at is not None else self.config.lifetime or 300.0
        if self.config.lifetime is not None:
            life = min(life, self.config.lifetime)  # short-lived means short-lived, whatever the provider allows
        if life <= 1.0:
            raise AuthError(f"the identity provider issued a grant for {self.resource} that is already expiring")
        self._token = tokens.access_token
        self._expires_at = started + life
        self._renew_at = started + life * RENEW_AT
        self.last = self._metadata(tokens, life)
        if self.on_grant is not None:
            self.on_grant(self.last)

    async def _exchange(self) -> TokenResponse:
        login = self.login
        meta = await login.metadata()
        subject = await login.subject_token()
        form = {"grant_type": EXCHANGE, "subject_token": subject.token, "subject_token_type": subject.token_type,
                "requested_token_type": ACCESS_TOKEN_TYPE, "resource": self.resource}
        if self.config.audience:
            form["audience"] = self.config.audience
        if self.config.scope:
            form["scope"] = self.config.scope
        try:
            body = await login.post_authenticated(meta.token_endpoint, form)
        except OAuthError as exc:
            raise AuthError(f"the identity provider refused a grant for {self.resource}: {exc.code}"
                            + (f" ({exc.description})" if exc.description else "")) from None
        return TokenResponse.parse(body, meta.token_endpoint)

    async def _for_resource(self) -> TokenResponse:
        login = self.login
        meta = await login.metadata()
        form = {"resource": self.resource}
        if self.config.scope:
            form["scope"] = self.config.scope
        refresh = None
        if login.is_bot:
            form["grant_type"] = "client_credentials"
        else:
            refresh = await login.refresh_token()
            form.update(grant_type="refresh_token", refresh_token=refresh)
        try:
            body = await login.post_authenticated(meta.token_endpoint, form)
        except OAuthError as exc:
            raise AuthError(f"the identity provider refused a token for {self.resource}: {exc.code}") from None
        tokens = TokenResponse.parse(body, meta.token_endpoint)
        if refresh is not None:
            await login.keep_rotated(refresh, tokens)  # a rotating provider has just retired the stored one
        return tokens

    def _metadata(self, tokens: TokenResponse, life: float) -> dict[str, Any]:
        claims = _unverified_claims(tokens.access_token)
        token_id = claims.get("jti") or "sha256:" + hashlib.sha256(tokens.access_token.encode()).hexdigest()[:16]
        return {"event": "grant", "issuer": self.login.config.issuer, "subject": claims.get("sub"),
                "resource": self.resource, "scope": tokens.scope or claims.get("scope"),
                "expires_in": round(life), "token_id": token_id}


def _unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read only for the record (relay is not the audience and does not trust it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
