"""ID token validation (OpenID Connect Core 3.1.3.7): signature against the provider's JWKS, issuer, audience,
expiry. What survives becomes the identity in transcripts: subject, name or email, groups, issuer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from relay.auth.discovery import ProviderMetadata
from relay.auth.oauth import get_json
from relay.errors import AuthError

# Asymmetric algorithms only: "none" and HMAC with a public value as the key are the classic JWT forgeries.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    name: str | None
    email: str | None
    groups: tuple[str, ...]
    expires_at: float | None

    def record(self) -> dict[str, Any]:
        """What a transcript's genesis and an approval request carry (never a token)."""
        return {"issuer": self.issuer, "subject": self.subject, "name": self.name, "email": self.email,
                "groups": list(self.groups)}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Identity:
        return cls(issuer=str(data["issuer"]), subject=str(data["subject"]), name=data.get("name"),
                   email=data.get("email"), groups=tuple(data.get("groups") or ()),
                   expires_at=data.get("expires_at"))


async def validate(http: httpx.AsyncClient, meta: ProviderMetadata, client_id: str, id_token: str) -> Identity:
    if meta.jwks_uri is None:
        raise AuthError(f"the provider {meta.issuer} publishes no JWKS: its ID tokens cannot be checked")
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise AuthError("the provider's ID token is not a JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AuthError(f"the provider's ID token is signed with {alg!r}, which relay does not accept")
    keys = jwt.PyJWKSet.from_dict(await get_json(http, meta.jwks_uri, "signing keys (JWKS)"))
    kid = header.get("kid")
    candidates = [k for k in keys.keys if kid is None or k.key_id == kid]
    if not candidates:
        raise AuthError("the provider's ID token is signed by a key its JWKS does not list")
    try:
        claims: dict[str, Any] = jwt.decode(id_token, candidates[0].key, algorithms=[alg], audience=client_id,
                                            issuer=meta.issuer, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                                            leeway=60)
    except jwt.PyJWTError as exc:
        raise AuthError(f"the provider's ID token does not check out: {exc}") from None
    groups = claims.get("groups")
    return Identity(
        issuer=meta.issuer, subject=str(claims["sub"]),
        name=_str(claims.get("preferred_username")) or _str(claims.get("name")),
        email=_str(claims.get("email")),
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        expires_at=float(claims["exp"]),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
