"""A small, real approval service on loopback that implements docs/approval-protocol.md, for the remote channel's
tests. Relay talks to it over a real socket; approvers are played by the test through `decide`, where the
reference service (planned) will have a web page::

    with ApprovalService(authenticate=introspecting(op.issuer, CI_BOT, CI_BOT_SECRET)) as service:
        # or tokens={"t0k"}, or no auth at all; introspecting(..., audience=URL): only tokens bound to URL
        service.url                                  # approvals.remote.url
        [item] = service.pending(1)                  # what relay created: the request body plus "service_id"
        service.decide(item["service_id"], approve=True, approver={"subject": "bob"}, reason="ok")
        service.decide(..., digest="0" * 64, check=False)   # misbehave: relay must refuse it
        service.answer(item["service_id"], {"state": "approved"})   # a malformed decision
        service.stop(); service.start()              # unreachable, then back on the same port
        service.refuse_tokens_seen()                 # 401 to every token presented so far; len(service.tokens)

Like a real service it refuses to let the requester approve their own request, unless `check=False`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jwt

# bearer token -> who the caller is (for the service's log), or None: not accepted
Authenticate = Callable[[str], str | None]
_Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (None: empty), headers

_PATH = re.compile(r"^/v1/approvals(?:/([^/]+)(/refusals)?)?$")
_REQUIRED = ("id", "session", "server", "tool", "digest", "nonce", "requester", "arguments", "rule", "approvers",
             "expires_at", "created_at")


class SelfApproval(Exception):
    """The service's own rule: the requester cannot approve their own request."""


@dataclass
class Entry:
    service_id: str
    body: dict[str, Any]
    caller: str | None
    state: str = "pending"  # pending, approved, denied, withdrawn
    decision: dict[str, Any] | None = None  # the poll answer once decided
    refusals: list[str] = field(default_factory=list)
    deleted: bool = False


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    names = {str(a.get(k)).casefold() for k in ("subject", "email", "name", "user") if a.get(k)}
    return any(str(b.get(k)).casefold() in names for k in ("subject", "email", "name") if b.get(k))


class ApprovalService:
    def __init__(self, *, tokens: Iterable[str] | None = None, authenticate: Authenticate | None = None,
                 port: int = 0) -> None:
        """`tokens` or `authenticate`: bearer tokens to accept; neither: no authentication (loopback tests).
        `port`: 0 picks a free one; a fixed one lets a test know `url` (an audience) before the service starts."""
        if tokens is not None:
            accepted = set(tokens)
            authenticate = lambda token: "static token" if token in accepted else None  # noqa: E731
        self._authenticate = authenticate
        self.entries: dict[str, Entry] = {}
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, caller) of every request
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.tokens: set[str] = set()  # SHA-256 of every bearer token presented (never the token)
        self._refused: set[str] = set()
        self._epoch = 0  # bumped by refuse_tokens_seen: held polls answer at once
        self._server: ThreadingHTTPServer | None = None
        self._port = port
        self._stopping = False
        self._open: set[socket.socket] = set()  # connections being served: relay keeps them alive

    # -- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> ApprovalService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with service._cond:
                    service._open.add(self.connection)

            def finish(self) -> None:
                with service._cond:
                    service._open.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                service._handle(self)

            do_GET = do_DELETE = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Unreachable: nothing listens on the port until `start`; requests it held are cut off."""
        server, self._server = self._server, None
        if server is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        server.shutdown()
        server.server_close()

    def __enter__(self) -> ApprovalService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the approvers' side (the test)

    def pending(self, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait for `count` pending requests; their bodies as relay sent them, plus "service_id"."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [{**e.body, "service_id": e.service_id} for e in self.entries.values() if e.state == "pending"]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} pending approval requests, wanted {count}")
                self._cond.wait(left)

    def decide(self, service_id: str, *, approve: bool, approver: dict[str, Any],
               reason: str | None = None, approvers: list[dict[str, Any]] | None = None, digest: str | None = None,
               nonce: str | None = None, check: bool = True) -> None:
        """An approver decides. `digest`/`nonce` override the request's; `check=False` skips the service's own
        self-approval rule (a service that misbehaves)."""
        with self._cond:
            entry = self.entries[service_id]
            if check and approve and any(_same(entry.body["requester"], who) for who in approvers or [approver]):
                raise SelfApproval(f"{approver} asked for {service_id}")
            decision = {"state": "approved" if approve else "denied", "digest": digest or entry.body["digest"],
                        "nonce": nonce or entry.body["nonce"], "approver": approver, "reason": reason,
                        "decided_at": time.time()}
            if approvers is not None:
                decision["approvers"] = approvers
            self._settle(entry, decision)

    def answer(self, service_id: str, decision: dict[str, Any]) -> None:
        """Answer the next poll with exactly this (a malformed decision, for instance)."""
        with self._cond:
            self._settle(self.entries[service_id], decision)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the approval service never saw what the test waited for")
                self._cond.wait(left)

    def refuse_tokens_seen(self) -> None:
        """From now on, answer 401 to every token presented so far, as a service that stopped trusting them does;
        polls it holds answer "pending" at once, so that relay's next request shows the token it has now."""
        with self._cond:
            self._refused |= self.tokens
            self._epoch += 1
            self._cond.notify_all()

    def _settle(self, entry: Entry, decision: dict[str, Any]) -> None:
        entry.state = str(decision.get("state"))
        entry.decision = decision
        self._cond.notify_all()

    # -- the protocol (relay's side)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        answer = self._route(h.command, url.path, url.query, raw, h.headers.get("authorization", ""))
        if answer is None:
            h.close_connection = True  # cut off, as a service that goes away does
            return
        status, body, headers = answer
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        if body is not None:
            h.send_header("content-type", "application/json")
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(self, method: str, path: str, query: str, raw: bytes, auth: str) -> _Answer | None:
        caller = None
        if self._authenticate is not None:
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            digest = hashlib.sha256(token.encode()).hexdigest()
            with self._cond:
                refused = digest in self._refused
                if token:
                    self.tokens.add(digest)
            caller = self._authenticate(token) if token and not refused else None
        with self._cond:
            self.log.append((method, path, caller))
        if self._authenticate is not None and caller is None:
            return 401, {"error": "a valid bearer token is required"}, {"www-authenticate": 'Bearer realm="approvals"'}
        m = _PATH.match(path)
        if m is None:
            return 404, {"error": "no such endpoint"}, {}
        if m.group(1) is None:
            return self._create(raw, caller) if method == "POST" else (405, {"error": "POST only"}, {})
        with self._cond:
            entry = self.entries.get(unquote(m.group(1)))
            if entry is None:
                return 404, {"error": "no such request"}, {}
            if m.group(2):  # relay refused the decision: it does not count, the request is open again
                if method != "POST":
                    return 405, {"error": "POST only"}, {}
                entry.refusals.append(str(json.loads(raw or b"{}").get("reason")))
                if entry.state in ("approved", "denied"):
                    entry.state, entry.decision = "pending", None
                self._cond.notify_all()
                return 204, None, {}
            if method == "DELETE":
                entry.deleted = True
                if entry.state == "pending":
                    entry.state = "withdrawn"
                self._cond.notify_all()
                return 204, None, {}
            if method != "GET":
                return 405, {"error": "GET or DELETE"}, {}
            wait = min(float(parse_qs(query).get("wait", ["0"])[0]), 60.0)
            deadline = time.monotonic() + wait
            epoch = self._epoch
            while entry.state == "pending" and not self._stopping and self._epoch == epoch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._stopping:
                return None
            return 200, entry.decision if entry.decision is not None else {"state": entry.state}, {}

    def _create(self, raw: bytes, caller: str | None) -> _Answer:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"error": "not JSON"}, {}
        if not isinstance(body, dict) or any(k not in body for k in _REQUIRED):
            return 400, {"error": "missing members"}, {}
        with self._cond:
            service_id = f"apr-{next(self._ids)}"
            self.entries[service_id] = Entry(service_id, body, caller)
            self._cond.notify_all()
        return 201, {"id": service_id, "state": "pending"}, {}


def introspecting(issuer: str, client_id: str, secret: str, *, audience: str | None = None) -> Authenticate:
    """Bearer tokens checked at the provider's RFC 7662 introspection endpoint, as a resource server would;
    the caller is the token's `sub`, else its `client_id`.

    With `audience`, the token must also be bound to it: its `aud` is, or holds, `audience`. An identity's own
    access token names no audience and is refused. The test provider (oidc-provider) will not introspect a token
    bound to a resource, an RFC 9068 JWT (it answers `unsupported_token_type`: "Structured JWT Tokens cannot be
    introspected"); such a token is checked as a resource server checks a JWT instead: signature against the
    issuer's JWKS, `iss`, `exp`, and then `aud` as above."""
    metadata = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    endpoint = metadata["introspection_endpoint"]
    keys = jwt.PyJWKClient(metadata["jwks_uri"])

    def structured(token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(token, keys.get_signing_key_from_jwt(token).key,
                                                algorithms=["RS256", "ES256"], issuer=issuer,
                                                options={"verify_aud": False, "require": ["exp", "sub"]})
        except jwt.PyJWTError:
            return {}
        return {**claims, "active": True}

    def check(token: str) -> str | None:
        resp = httpx.post(endpoint, data={"token": token}, auth=(client_id, secret), timeout=10)
        claims = resp.json() if resp.status_code == 200 else {}
        if audience is not None and resp.status_code != 200 and _error(resp) == "unsupported_token_type":
            claims = structured(token)
        if claims.get("active") is not True:
            return None
        if audience is not None and audience not in _audiences(claims):
            return None
        return str(claims.get("sub") or claims.get("client_id"))

    return check


def _error(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []

