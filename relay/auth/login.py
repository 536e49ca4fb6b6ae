"""One identity's login, live: the subject token that stands for the person or bot, renewed as needed.

People log in with the device flow (`relay login`); the refresh token and the validated identity go to the
login store, access tokens stay in memory. Bots never prompt: client credentials (a secret from the
environment, or private_key_jwt) or a workload identity token from a file or variable.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass

import anyio
import httpx

from relay.auth.device import DevicePrompt, device_login
from relay.auth.discovery import ProviderMetadata, discover
from relay.auth.idtoken import Identity, validate
from relay.auth.oauth import OAuthError, TokenResponse, post_form
from relay.auth.store import LoginStore, StoredLogin, client_secret
from relay.config import IdentityConfig
from relay.errors import AuthError

log = logging.getLogger("relay.auth")

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
EARLY = 30.0  # seconds before expiry a token counts as expired: it must survive the trip to the server


class NotLoggedIn(AuthError):
    """No usable login for a person's identity: `relay login` (or the in-band login) is needed."""


@dataclass(frozen=True)
class SubjectToken:
    token: str
    token_type: str  # RFC 8693 token type URI


class Login:
    def __init__(self, config: IdentityConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http
        self.store = LoginStore(config.name, config.store)
        self._meta: ProviderMetadata | None = None
        self._access: TokenResponse | None = None
        self._identity: Identity | None = None
        self._lock = anyio.Lock()

    @property
    def is_bot(self) -> bool:
        return self.config.flow != "device"

    async def metadata(self) -> ProviderMetadata:
        if self._meta is None:
            self._meta = await discover(self.http, self.config.issuer)
        return self._meta

    # -- people ------------------------------------------------------------------------------------------

    async def login(self, prompt: DevicePrompt, resources: list[str] | None = None) -> Identity:
        """The device flow; on success the refresh token and identity are stored. `resources`: the servers that
        take access tokens by resource indicator (grant mode `resource`), which the login must cover."""
        if self.is_bot:
            raise AuthError(f"identity '{self.config.name}' is a bot ({self.config.flow}): it needs no login")
        meta = await self.metadata()
        tokens = await device_login(self.http, meta, self.config, prompt, resources=resources)
        if tokens.id_token is None:
            raise AuthError("the provider did not return an ID token", hint="include the 'openid' scope")
        identity = await validate(self.http, meta, self.config.client_id, tokens.id_token)
        self._access, self._identity = tokens, identity
        self._save(tokens.refresh_token, identity, tokens.refresh_expires_at)
        return identity

    def stored_identity(self) -> Identity | None:
        stored = self.store.load()
        if stored is None:
            return None
        return Identity.from_record(stored.identity)

    async def logout(self) -> bool:
        """Revoke the refresh token at the provider when it can, then forget the login. True if revoked."""
        stored = self.store.load()
        revoked = False
        if stored is not None and stored.refresh_token:
            meta = await self.metadata()
            if meta.revocation_endpoint:
                try:
                    await post_form(self.http, meta.revocation_endpoint, {
                        "token": stored.refresh_token, "token_type_hint": "refresh_token",
                        "client_id": self.config.client_id}, expect_json=False)  # RFC 7009: an empty 200
                    revoked = True
                except AuthError as exc:
                    log.warning("could not revoke the login at the provider: %s", exc)
        self.store.delete()
        self._access = None
        return revoked

    def _save(self, refresh_token: str | None, identity: Identity, login_expires_at: float | None = None) -> None:
        record = {**identity.record(), "expires_at": identity.expires_at, "login_expires_at": login_expires_at}
        self.store.save(StoredLogin(refresh_token=refresh_token, identity=record, saved_at=time.time()))

    # -- the subject token -------------------------------------------------------------------------------

    async def identity(self) -> Identity | None:
        """Who this login is (for transcripts), once known."""
        if self._identity is None and not self.is_bot:
            self._identity = self.stored_identity()
        return self._identity

    async def subject_token(self) -> SubjectToken:
        """A token that stands for the person or bot, to exchange for a server's grant."""
        if self.config.flow == "token":
            return SubjectToken(self._workload_token(), JWT_TOKEN_TYPE)
        async with self._lock:
            if self._access is None or _expired(self._access):
                self._access = await (self._client_credentials() if self.is_bot else self._refresh())
            return SubjectToken(self._access.access_token, ACCESS_TOKEN_TYPE)

    async def refresh_token(self) -> str:
        stored = self.store.load()
        if stored is None or not stored.refresh_token:
            raise NotLoggedIn(f"not logged in as '{self.config.name}'", hint=f"run `relay login {self.config.name}`")
        return stored.refresh_token

    async def _refresh(self) -> TokenResponse:
        meta = await self.metadata()
        refresh = await self.refresh_token()
        try:
            tokens = TokenResponse.parse(await post_form(self.http, meta.token_endpoint, {
                "grant_type": "refresh_token", "refresh_token": refresh, "client_id": self.config.client_id,
            }), meta.token_endpoint)
        except OAuthError as exc:
            if exc.code == "invalid_grant":
                raise NotLoggedIn(f"the login for '{self.config.name}' has expired or was revoked",
                                  hint=f"run `relay login {self.config.name}`") from None
            raise
        await self.keep_rotated(refresh, tokens)
        return tokens

    async def keep_rotated(self, used: str, tokens: TokenResponse) -> None:
        """After a refresh with `used`: when the provider rotated it, the old one is dead; keep the new one (and the
        identity, refreshed when an ID token came). Every refresh, whatever else it asks for, must end here."""
        if not tokens.refresh_token or tokens.refresh_token == used:
            return
        identity = self.stored_identity()
        if tokens.id_token:
            identity = await validate(self.http, await self.metadata(), self.config.client_id, tokens.id_token)
        if identity is not None:
            self._save(tokens.refresh_token, identity, tokens.refresh_expires_at)

    async def _client_credentials(self) -> TokenResponse:
        meta = await self.metadata()
        form = {"grant_type": "client_credentials"}
        scopes = [s for s in self.config.scopes if s not in ("openid", "offline_access", "profile", "email")]
        if scopes:
            form["scope"] = " ".join(scopes)
        return TokenResponse.parse(
            await self.post_authenticated(meta.token_endpoint, form), meta.token_endpoint)

    async def post_authenticated(self, url: str, form: dict[str, str]) -> dict[str, object]:
        """A token-endpoint POST with this identity's client authentication."""
        cfg = self.config
        if cfg.private_key_file is not None:
            meta = await self.metadata()
            form = {**form, "client_id": cfg.client_id,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": self._assertion(meta.token_endpoint)}
            return await post_form(self.http, url, form)
        if cfg.client_secret_env is not None:
            secret = os.environ.get(cfg.client_secret_env)
            if not secret:
                raise AuthError(f"identity '{cfg.name}' takes its client secret from ${cfg.client_secret_env}, "
                                "which is not set")
            return await post_form(self.http, url, form, auth=(cfg.client_id, secret))
        if cfg.client_secret_store == "keyring":
            stored = client_secret(cfg.name)
            if not stored:
                raise AuthError(f"no client secret for identity '{cfg.name}' in the OS keyring",
                                hint=f"store it with `relay login {cfg.name}`")
            return await post_form(self.http, url, form, auth=(cfg.client_id, stored))
        return await post_form(self.http, url, {**form, "client_id": cfg.client_id})

    def _assertion(self, audience: str) -> str:
        """RFC 7523 client authentication: a short JWT signed with the bot's private key."""
        import jwt
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        cfg = self.config
        assert cfg.private_key_file is not None
        try:
            key = cfg.private_key_file.read_bytes()
        except OSError as exc:
            raise AuthError(f"cannot read the private key {cfg.private_key_file}: {exc.strerror or exc}") from None
        now = int(time.time())
        claims = {"iss": cfg.client_id, "sub": cfg.client_id, "aud": audience, "iat": now, "exp": now + 60,
                  "jti": secrets.token_urlsafe(16)}
        headers = {"kid": cfg.key_id} if cfg.key_id else None
        try:
            private = load_pem_private_key(key, password=None)
            return jwt.encode(claims, private, algorithm=_algorithm(private), headers=headers)  # type: ignore[arg-type]
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthError(f"cannot sign a client assertion with {cfg.private_key_file}: {type(exc).__name__}") from None

    def _workload_token(self) -> str:
        cfg = self.config
        if cfg.token_env is not None:
            token = os.environ.get(cfg.token_env, "").strip()
            if not token:
                raise AuthError(f"identity '{cfg.name}' takes its workload token from ${cfg.token_env}, which is not set")
            return token
        assert cfg.token_file is not None
        try:
            token = cfg.token_file.read_text().strip()
        except OSError as exc:
            raise AuthError(f"cannot read the workload token {cfg.token_file}: {exc.strerror or exc}") from None
        if not token:
            raise AuthError(f"the workload token file {cfg.token_file} is empty")
        return token


def _expired(tokens: TokenResponse) -> bool:
    return tokens.expires_at is not None and time.time() >= tokens.expires_at - EARLY


def _algorithm(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name, "ES256")
    raise ValueError("unsupported key type")
