"""A real OpenID provider on loopback for relay's identity tests, and helpers that play the user.

`OidcProvider` runs tests/node/oidc/provider.mjs (``oidc-provider`` 9.13.3, pinned in tests/node)
under Node 22 (`ensure_node22`, falling back to the ``node`` on PATH) at ``http://127.0.0.1:PORT``::

    with OidcProvider(ttl={"accessToken": 60}) as op:      # or op.start() / op.close()
        op.issuer, op.token_endpoint, op.jwks_uri, ...
        grant = op.device_authorization(resource=mcp_url)  # as relay would
        op.approve_device(grant["user_code"], login="alice")   # as the user would, over HTTP
        op.stop(); op.start()                              # provider down and back, same port and keys

Clients: ``relay-cli`` (public, auth ``none``; device_code, refresh_token, token-exchange),
``ci-bot`` (secret ``ci-bot-secret``, client_secret_basic or _post; client_credentials,
token-exchange), ``ci-bot-jwt`` (private_key_jwt with the key `client_assertion` signs; same grants).
Users (dev login pages, any password): ``alice`` (groups ``payments-admins``) and ``bob``
(``payments-readers``), see `USERS`. ID tokens carry ``sub`` plus the claims of the scopes asked
for: ``email`` -> email, email_verified; ``profile`` -> name, preferred_username; ``groups``.

Tokens: RS256 JWTs signed with `signing_jwk` (kid ``relay-test-rs256``). An access token for a
resource (``resource=`` on any grant, RFC 8707; any loopback http URL is a known resource whose
scopes are `resource_scopes`) is an RFC 9068 JWT (``typ: at+jwt``; iss, sub, aud = the resource,
client_id, scope, jti, iat, exp); without a resource it is opaque (userinfo only). Refresh tokens
need scope ``offline_access`` and rotate on every use by the public client (library default).

Token exchange (RFC 8693, `exchange`): ``subject_token`` + ``subject_token_type`` of
``...:access_token`` (opaque or JWT, from this provider), ``...:id_token`` (``aud`` must be the
calling client) or ``...:jwt`` (a workload token from `workload_token`); optional ``actor_token``
(+ type) adds ``act: {sub}``; exactly one ``resource`` or ``audience``; ``scope`` within the
resource scopes (default: all of them); non-standard ``requested_lifetime`` (seconds) shortens
``exp`` (capped at ``ttl.accessToken``). Returns ``access_token`` (JWT as above, sub = the subject
token's sub), ``issued_token_type``, ``token_type: Bearer``, ``expires_in``, ``scope``.
``refuse_token_exchange="invalid_grant" | "unauthorized_client" | "access_denied"`` (or
``configure(tokenExchange={"refuse": ...})`` at run time) makes every exchange fail with that error.

TTLs in seconds (``ttl=`` or ``configure(ttl=...)``): accessToken, idToken, refreshToken,
deviceCode, clientCredentials. Device polling: ``device_interval`` is the ``interval`` announced;
a poll sooner than that after the previous one answers ``slow_down`` and adds
``slow_down_increment`` seconds for that device code.
"""

from __future__ import annotations

import html.parser
import json
import os
import queue
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.node import NODE_DIR, NodeSetupError, ensure_node22, node_bin_dir, node_executable
from tests.support.processes import PY, SERVERS, _Lines, free_port, stop

PROVIDER_SCRIPT = NODE_DIR / "oidc" / "provider.mjs"

RELAY_CLI = "relay-cli"
CI_BOT = "ci-bot"
CI_BOT_SECRET = "ci-bot-secret"
CI_BOT_JWT = "ci-bot-jwt"

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"

WORKLOAD_ISSUER = "https://workload.relay.test"
"""Issuer of the workload-identity JWTs (`OidcProvider.workload_token`) the provider trusts."""

USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@example.test", "email_verified": True, "name": "Alice Admin",
        "preferred_username": "alice", "groups": ["payments-admins"],
    },
    "bob": {
        "email": "bob@example.test", "email_verified": True, "name": "Bob Reader",
        "preferred_username": "bob", "groups": ["payments-readers"],
    },
}

USER_SCOPES = "openid offline_access email profile groups"


class OidcUserError(RuntimeError):
    """A provider page refused what the simulated user did (unknown or expired code, ...)."""


# --------------------------------------------------------------------------- keys


def _private_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, alg: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    jwk.pop("key_ops", None)  # ["sign"] would stop verifiers from using the public half
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def _public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


# --------------------------------------------------------------------------- HTML forms


class _Forms(html.parser.HTMLParser):
    """Collects the forms of a page: id, action and the inputs' name -> value."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.title = ""
        self.errors: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id", ""), "action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and "name" in a:
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag in ("title", "p"):
            self._in = "error" if tag == "p" and a.get("class") == "red" else tag

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data.strip()
        elif self._in == "error":
            self.errors.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "p"):
            self._in = None


def _parse(response: httpx.Response) -> _Forms:
    parser = _Forms()
    parser.feed(response.text)
    return parser


def _user_code(code_or_uri: str) -> str:
    if "://" in code_or_uri:
        values = urllib.parse.parse_qs(urllib.parse.urlsplit(code_or_uri).query).get("user_code")
        if not values:
            raise ValueError("verification URI has no user_code")
        return values[0]
    return code_or_uri


# --------------------------------------------------------------------------- the provider


class OidcProvider:
    """oidc-provider on 127.0.0.1; see the module docstring for clients, users, tokens and settings."""

    def __init__(
        self,
        *,
        port: int | None = None,
        ttl: Mapping[str, int] | None = None,
        device_interval: int = 1,
        slow_down_increment: int = 5,
        refuse_token_exchange: str | None = None,
        resource_scopes: str = "mcp:tools mcp:admin",
        users: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.resource_scopes = resource_scopes
        self._workdir = Path(tempfile.mkdtemp(prefix="relay-oidc-"))
        self.signing_jwk = _private_jwk(rsa.generate_private_key(65537, 2048), "relay-test-rs256", "RS256")
        self._ci_bot_key = ec.generate_private_key(ec.SECP256R1())
        self._workload_key = ec.generate_private_key(ec.SECP256R1())
        ci_jwk = _private_jwk(self._ci_bot_key, "ci-bot-jwt-key", "ES256")
        workload_jwk = _private_jwk(self._workload_key, "workload-key", "ES256")
        self._config: dict[str, Any] = {
            "keys": [self.signing_jwk],
            "cookieKeys": [uuid.uuid4().hex],
            "stateFile": str(self._workdir / "state.json"),
            "users": dict(users or USERS),
            "resourceScopes": resource_scopes,
            "ttl": dict(ttl or {}),
            "device": {"interval": device_interval, "slowDownIncrement": slow_down_increment},
            "tokenExchange": {"refuse": refuse_token_exchange},
            "ciBotSecret": CI_BOT_SECRET,
            "ciBotJwks": {"keys": [_public_jwk(ci_jwk)]},
            "workloadIssuers": {WORKLOAD_ISSUER: {"keys": [_public_jwk(workload_jwk)]}},
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self._workdir / "provider.log"

    # ---- lifecycle

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OidcProvider:
        """Start (or restart after `stop`) on the same port with the same keys and stored state."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        node_bin_dir()  # npm ci for tests/node when needed
        node = ensure_node22()
        try:
            executable = str(node) if node is not None else node_executable()
        except NodeSetupError as exc:
            raise NodeSetupError(f"no Node.js for the OpenID provider: {exc}") from exc
        config_file = self._workdir / "config.json"
        config_file.write_text(json.dumps(self._config))
        config_file.chmod(0o600)
        log = self._log.open("ab")
        try:
            self._proc = subprocess.Popen(
                [executable, str(PROVIDER_SCRIPT), "--port", str(self.port), "--config-file", str(config_file)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=PROVIDER_SCRIPT.parent,
            )
        finally:
            log.close()
        assert self._proc.stdout is not None
        lines = _Lines(self._proc.stdout)  # its thread keeps draining stdout after READY
        deadline = time.monotonic() + 30
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise TimeoutError(f"OpenID provider not ready after 30s:\n{self.log_tail()}") from None
            if line is None:
                self._proc.wait(5)
                raise RuntimeError(f"OpenID provider exited ({self._proc.returncode}):\n{self.log_tail()}")
            if line.startswith(b"READY "):
                break
        return self

    def rotate_signing_key(self) -> None:
        """The provider rotates its token signing key (a new kid) and restarts: tokens signed with the old key stop
        verifying at resource servers, which fetch the new JWKS when they meet the new kid."""
        self._rotations = getattr(self, "_rotations", 0) + 1
        self.signing_jwk = _private_jwk(rsa.generate_private_key(65537, 2048), f"relay-test-rs256-{self._rotations}",
                                        "RS256")
        self._config["keys"] = [self.signing_jwk]
        self.stop()
        self.start()

    def ci_bot_key_pem(self) -> bytes:
        """The private key of `ci-bot-jwt` (private_key_jwt), as the PEM file a bot would be configured with."""
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        return self._ci_bot_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    def stop(self) -> None:
        """Stop the provider ("provider down"); `start` brings it back on the same port."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the provider exits when its stdin closes
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings of the running provider (keys: ttl, device, tokenExchange, resourceScopes, users).

        Nested mappings are merged; the change also applies after a `stop`/`start`.
        """
        for key, value in settings.items():
            current = self._config.get(key)
            self._config[key] = {**current, **value} if isinstance(current, dict) and key != "users" else value
        response = httpx.post(f"{self.issuer}/__test/config", json=settings, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # ---- endpoints

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.issuer}/device/auth"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.issuer}/token/revocation"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/me"

    # ---- client side (what relay will do), for tests and set-up

    def client_assertion(self, client_id: str = CI_BOT_JWT, *, lifetime: int = 60) -> str:
        """An RFC 7523 private_key_jwt client assertion for `ci-bot-jwt`."""
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": self.issuer, "jti": uuid.uuid4().hex,
                  "iat": now, "exp": now + lifetime}
        return jwt.encode(claims, self._ci_bot_key, algorithm="ES256", headers={"kid": "ci-bot-jwt-key"})

    def workload_token(self, sub: str = "repo:example/payments:ref:refs/heads/main", *, lifetime: int = 300,
                       **claims: Any) -> str:
        """A workload-identity JWT (as a CI system would issue) that the provider accepts as subject_token."""
        now = int(time.time())
        payload = {"iss": WORKLOAD_ISSUER, "sub": sub, "aud": self.issuer, "iat": now, "exp": now + lifetime,
                   "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(payload, self._workload_key, algorithm="ES256", headers={"kid": "workload-key"})

    def token_request(self, data: Mapping[str, str | Sequence[str]], *, client: str = RELAY_CLI) -> httpx.Response:
        """POST the token endpoint authenticated as `client` (none, client_secret_basic or private_key_jwt)."""
        form: dict[str, str | Sequence[str]] = dict(data)
        auth: tuple[str, str] | None = None
        if client == CI_BOT:
            auth = (CI_BOT, CI_BOT_SECRET)
        elif client == CI_BOT_JWT:
            form.update(client_id=CI_BOT_JWT, client_assertion=self.client_assertion(),
                        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        else:
            form["client_id"] = client
        return httpx.post(self.token_endpoint, data=form, auth=auth, timeout=10)

    def device_authorization(self, *, scope: str = USER_SCOPES, resource: str | None = None,
                             client_id: str = RELAY_CLI) -> dict[str, Any]:
        """Start a device flow (RFC 8628 §3.1) and return the provider's JSON answer."""
        data = {"client_id": client_id, "scope": scope, **({"resource": resource} if resource else {})}
        response = httpx.post(self.device_authorization_endpoint, data=data, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def poll_device(self, device_code: str, *, client_id: str = RELAY_CLI) -> httpx.Response:
        """One token-endpoint poll for a device code (no waiting: slow_down is the caller's concern)."""
        return self.token_request({"grant_type": DEVICE_CODE_GRANT, "device_code": device_code}, client=client_id)

    def login(self, user: str = "alice", *, scope: str = USER_SCOPES, resource: str | None = None) -> dict[str, Any]:
        """A whole device-flow login for `user`; returns the token response (access, refresh, id tokens)."""
        grant = self.device_authorization(scope=scope, resource=resource)
        self.approve_device(grant["user_code"], login=user)
        response = self.poll_device(grant["device_code"])
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def client_credentials(self, *, client: str = CI_BOT, resource: str | None = None,
                           scope: str | None = None) -> httpx.Response:
        data = {"grant_type": "client_credentials"}
        data.update({k: v for k, v in (("resource", resource), ("scope", scope)) if v})
        return self.token_request(data, client=client)

    def exchange(self, subject_token: str, *, resource: str | None = None, audience: str | None = None,
                 subject_token_type: str = ACCESS_TOKEN_TYPE, scope: str | None = None,
                 requested_lifetime: int | None = None, actor_token: str | None = None,
                 actor_token_type: str | None = None, client: str = RELAY_CLI) -> httpx.Response:
        """An RFC 8693 token exchange at the token endpoint."""
        data = {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token": subject_token,
                "subject_token_type": subject_token_type}
        optional = {"resource": resource, "audience": audience, "scope": scope, "actor_token": actor_token,
                    "actor_token_type": actor_token_type,
                    "requested_lifetime": None if requested_lifetime is None else str(requested_lifetime)}
        data.update({k: v for k, v in optional.items() if v is not None})
        return self.token_request(data, client=client)

    def public_keys(self) -> jwt.PyJWKSet:
        """The provider's published JWKS."""
        return jwt.PyJWKSet.from_dict(httpx.get(self.jwks_uri, timeout=10).raise_for_status().json())

    def decode(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Verify a JWT from this provider (signature, iss, exp; aud when given) and return its claims."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = next(k for k in self.public_keys().keys if k.key_id == kid)
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], issuer=self.issuer,
                                            audience=audience, options={"verify_aud": audience is not None})
        return claims

    # ---- the user, driving the provider's own pages

    def _confirm_page(self, browser: httpx.Client, code_or_uri: str) -> tuple[str, dict[str, str]]:
        user_code = _user_code(code_or_uri)
        page = browser.get("/device")
        form = next(f for f in _parse(page).forms if f["id"] == "op.deviceInputForm")
        confirm = browser.post(form["action"], data={**form["fields"], "user_code": user_code})
        parsed = _parse(confirm)
        forms = [f for f in parsed.forms if f["id"] == "op.deviceConfirmForm"]
        if not forms:
            raise OidcUserError(f"user code {user_code!r} refused: {' '.join(parsed.errors) or parsed.title}")
        return forms[0]["action"], forms[0]["fields"]

    def approve_device(self, code_or_uri: str, login: str = "alice", *, password: str = "any") -> None:
        """Play the user: enter the code (or open verification_uri_complete), confirm, log in, consent."""
        with httpx.Client(base_url=self.issuer, follow_redirects=True, timeout=10) as browser:
            action, fields = self._confirm_page(browser, code_or_uri)
            page = browser.post(action, data=fields)
            for _ in range(6):
                parsed = _parse(page)
                if parsed.title == "Sign-in Success":
                    return
                prompts = [f for f in parsed.forms if "prompt" in f["fields"]]
                if not prompts:
                    raise OidcUserError(f"unexpected page {parsed.title!r}: {' '.join(parsed.errors)}")
                form = prompts[0]
                data = dict(form["fields"])
                if data["prompt"] == "login":
                    data.update(login=login, password=password)
                page = browser.post(form["action"], data=data)
            raise OidcUserError(f"device approval did not finish; last page {_parse(page).title!r}")

    def deny_device(self, code_or_uri: str) -> None:
        """Play the user: enter the code and press Abort; the device then gets access_denied."""
        with httpx.Client(base_url=self.issuer, follow_redirects=True, timeout=10) as browser:
            action, fields = self._confirm_page(browser, code_or_uri)
            fields = {k: v for k, v in fields.items() if k != "confirm"}
            page = browser.post(action, data={**fields, "abort": "yes"})
            parsed = _parse(page)
            if not any("interrupted" in error for error in parsed.errors):
                raise OidcUserError(f"abort not acknowledged: {parsed.title!r} {' '.join(parsed.errors)}")


# --------------------------------------------------------------------------- the protected MCP server


@contextmanager
def protected_server(issuer: str, *required_scopes: str, port: int | None = None) -> Iterator[str]:
    """tests/servers/protected_server.py trusting `issuer`; yields its MCP URL (the resource) once READY."""
    args = [PY, str(SERVERS / "protected_server.py"), "--issuer", issuer, "--port", str(port or 0),
            "--exit-on-stdin-eof"]
    for scope in required_scopes:
        args += ["--required-scope", scope]
    # stdin stays open for the server's lifetime: if the test process dies, the server exits too.
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    lines = _Lines(proc.stderr)
    try:
        deadline = time.monotonic() + 30
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"protected_server exited: {b''.join(lines.seen).decode(errors='replace')}")
            if line.startswith(b"READY "):
                yield line.split()[1].decode()
                return
    finally:
        stop(proc)
        for stream in (proc.stdin, proc.stderr):
            if stream is not None:
                stream.close()
