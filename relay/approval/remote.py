"""The remote approval channel: relay's side of an HTTP approval service (docs/approval-protocol.md).

It creates the request at the service, long-polls for the decision and brings it to the broker, which checks it;
on cancellation (decided elsewhere, timed out, withdrawn) it withdraws the request at the service. Relay presents
the configured identity's access token or, with `grant:`, a short-lived token bound to the service for the life of
each request; no token ever reaches a log line or an error message.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from relay.approval.broker import Broker, DecisionRefused
from relay.approval.channels import ChannelUnavailable, ClientLink
from relay.approval.request import ApprovalRequest
from relay.auth import oauth
from relay.auth.grants import Grant
from relay.auth.login import Login
from relay.config import IdentityConfig, RemoteApprovalConfig
from relay.errors import AuthError

log = logging.getLogger("relay.approval")

POLL_WAIT = 30  # seconds the service may hold a long poll
MIN_POLL_INTERVAL = 1.0  # seconds between the starts of two polls, at least
POLL_FAILURES = 3  # transient poll failures in a row before the channel counts as unreachable
MAX_REFUSALS = 3  # refused decisions for one request before relay stops listening to the service
CLEANUP_TIMEOUT = 5.0  # seconds for a withdrawal or refusal notice, which must not hold up the session
MAX_TEXT = 500  # characters of a service-supplied text (reason, name) relay passes on


class _Malformed(Exception):
    """The service answered 200 with something that is not a decision relay can read."""


class _Transient(Exception):
    """Worth another try: no connection, a timeout, a 5xx or 429."""


@dataclass(frozen=True)
class _Decision:
    approve: bool
    digest: str
    nonce: str
    approvers: tuple[dict[str, str], ...]  # who decided; several when the request needs several approvals
    reason: str | None


class RemoteChannel:
    name = "remote"

    def __init__(self, config: RemoteApprovalConfig, identity: IdentityConfig | None = None,
                 login: Login | None = None, on_grant: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`login`: the session's own login when it is the same identity (one refresh token, one user of it).
        `on_grant`: told each grant obtained for the service (its metadata, never the token), for the transcript."""
        self.url = config.url
        self._identity = identity
        self._login = login
        self._grant = config.grant  # None: the identity's own token
        self._on_grant = on_grant
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- the channel -----------------------------------------------------------------------------------------

    async def offer(self, request: ApprovalRequest, broker: Broker, client: ClientLink) -> None:
        async with self._credentials() as grant:
            service_id = await self._create(request, grant)
            log.info("approval %s: offered to the approval service as %s", request.id, service_id)
            open_at_service = True
            try:
                open_at_service = await self._follow(request, broker, service_id, grant)
            finally:
                if open_at_service:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                        await self._notify(grant, "DELETE", service_id, None, "withdraw")

    async def _follow(self, request: ApprovalRequest, broker: Broker, service_id: str, grant: Grant | None) -> bool:
        """Poll until the broker has a verdict; False once the service's request is settled (nothing to withdraw)."""
        failures = refusals = 0
        while broker.is_pending(request.id):
            began = time.monotonic()
            try:
                decision = await self._poll(request, service_id, grant)
                failures = 0
            except _Transient as exc:
                failures += 1
                if failures >= POLL_FAILURES:
                    raise ChannelUnavailable(f"the approval service is unreachable: {exc}") from None
                await anyio.sleep(1.0)
                continue
            except _Malformed as exc:
                broker.fail(request.id, f"the approval service sent a malformed decision: {exc}", self.name)
                return True
            if decision is None:
                # A service that answers "pending" at once, ignoring `wait`, is not asked more than once a second.
                await anyio.sleep(max(0.0, MIN_POLL_INTERVAL - (time.monotonic() - began)))
                continue
            try:
                self._apply(request, broker, decision)
            except DecisionRefused as exc:
                refusals += 1
                await self._notify(grant, "POST", service_id, {"reason": str(exc)}, "report a refused decision on")
                if refusals >= MAX_REFUSALS:
                    raise ChannelUnavailable(f"the approval service sent {refusals} decisions relay refused") from None
                continue
            return False
        return True

    def _apply(self, request: ApprovalRequest, broker: Broker, decision: _Decision) -> None:
        # Every approver is checked before any counts, so that a refused one leaves nothing half-applied.
        names = [_display(who) for who in decision.approvers]
        if len(set(names)) != len(names):
            raise broker.refuse(request.id, names[0], self.name, "the decision names the same approver twice")
        for name, who in zip(names, decision.approvers, strict=True):
            broker.check(request.id, decision.digest, approve=decision.approve, approver=name, channel=self.name,
                         nonce=decision.nonce, identity=who)
        needed = broker.still_needed(request.id)  # fewer when people approved on another channel already
        if decision.approve and len(names) < needed:
            raise broker.refuse(request.id, ", ".join(names), self.name,
                                f"request {request.id} needs {needed} more approver{'s' if needed > 1 else ''}, "
                                f"the decision names {len(names)}")
        for name, who in zip(names, decision.approvers, strict=True):
            if broker.decide(request.id, decision.digest, approve=decision.approve, approver=name,
                             reason=decision.reason, channel=self.name, nonce=decision.nonce,
                             identity=who) is not None:
                break

    # -- the wire ------------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = oauth.client()  # no redirects (they would carry the token), no proxies from the env
        return self._http

    def _at(self, service_id: str | None = None, suffix: str = "") -> str:
        base = f"{self.url}/v1/approvals"
        return base if service_id is None else f"{base}/{urllib.parse.quote(service_id, safe='')}{suffix}"

    def _identity_login(self) -> Login | None:
        if self._login is None and self._identity is not None:
            self._login = Login(self._identity, self._client())
        return self._login

    @contextlib.asynccontextmanager
    async def _credentials(self) -> AsyncIterator[Grant | None]:
        """With `grant:`, a grant bound to the service for one request: obtained at its first use, renewed in the
        background while the request is followed, dropped with it. None: the identity's own token (or none)."""
        login = self._identity_login()
        if self._grant is None or login is None:
            yield None
            return
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:
            try:
                yield Grant(login, self.url, self._grant, tg, on_grant=self._on_grant)
            except Exception as exc:
                failed = exc  # raised below as itself: a task group would wrap it, and the guard reads its message
            finally:
                tg.cancel_scope.cancel()  # a renewal still in flight is of no use once the request is over
        if failed is not None:
            raise failed

    async def _headers(self, grant: Grant | None) -> dict[str, str]:
        login = self._identity_login()
        if login is None:
            return {}
        try:
            value = await grant.authorization() if grant is not None else f"Bearer {(await login.subject_token()).token}"
        except AuthError as exc:
            raise ChannelUnavailable(
                f"relay has no token for the approval service (identity '{login.config.name}'): {exc}") from None
        return {"authorization": value}

    async def _send(self, grant: Grant | None, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request to the service. A grant it refuses (401) is obtained afresh and the request sent once more,
        as for servers; the identity's own token is what it is, so a 401 to it stands."""
        headers = await self._headers(grant)
        resp = await self._client().request(method, url, headers=headers, **kwargs)
        if resp.status_code != 401 or grant is None:
            return resp
        await grant.rejected(headers["authorization"])
        return await self._client().request(method, url, headers=await self._headers(grant), **kwargs)

    async def _create(self, request: ApprovalRequest, grant: Grant | None) -> str:
        for attempt in range(2):
            try:
                resp = await self._send(grant, "POST", self._at(), json=request.public())
            except httpx.HTTPError as exc:
                problem = f"the approval service is unreachable: {_why(exc)}"
            else:
                if resp.status_code == 201:
                    body = _object(resp)
                    service_id = body.get("id") if body is not None else None
                    if isinstance(service_id, str) and 0 < len(service_id) <= 200:
                        return service_id
                    raise ChannelUnavailable("the approval service did not say which id it gave the request")
                problem = _status(resp, "create the request")
                if not _retry(resp.status_code):
                    raise ChannelUnavailable(problem)
            if attempt == 0:
                await anyio.sleep(0.5)
        raise ChannelUnavailable(problem)

    async def _poll(self, request: ApprovalRequest, service_id: str, grant: Grant | None) -> _Decision | None:
        wait = max(1, min(POLL_WAIT, math.ceil(request.expires_at - time.time())))
        timeout = httpx.Timeout(wait + 15.0, connect=10.0)
        try:
            resp = await self._send(grant, "GET", self._at(service_id), params={"wait": str(wait)}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise _Transient(_why(exc)) from None
        if resp.status_code != 200:
            if _retry(resp.status_code):
                raise _Transient(f"HTTP {resp.status_code}")
            if resp.status_code in (404, 410):
                raise ChannelUnavailable(f"the approval service no longer knows request {request.id}")
            raise ChannelUnavailable(_status(resp, "follow the request"))
        body = _object(resp)
        if body is None:
            raise _Malformed("not a JSON object")
        return _decision(body)

    async def _notify(self, grant: Grant | None, method: str, service_id: str, body: dict[str, Any] | None,
                      what: str) -> None:
        """Withdraw the request or report a refusal: best effort, the call's outcome does not depend on it."""
        url = self._at(service_id, "/refusals" if method == "POST" else "")
        try:
            with anyio.fail_after(CLEANUP_TIMEOUT):
                resp = await self._send(grant, method, url, json=body)
        except (httpx.HTTPError, TimeoutError, ChannelUnavailable) as exc:
            text = _why(exc) if isinstance(exc, httpx.HTTPError) else str(exc) or type(exc).__name__
            log.warning("approval service: could not %s request %s: %s", what, service_id, text)
            return
        if resp.status_code not in (200, 204, 404, 410):
            log.warning("approval service: could not %s request %s: HTTP %d", what, service_id, resp.status_code)


# -- reading answers ---------------------------------------------------------------------------------------------


def _decision(body: dict[str, Any]) -> _Decision | None:
    """The decision in a poll answer; None while pending. Raises _Malformed for anything else, naming the member
    (never echoing what the service sent)."""
    state = body.get("state")
    if state == "pending":
        return None
    if state == "withdrawn":
        raise ChannelUnavailable("the approval service withdrew the request")
    if state not in ("approved", "denied"):
        raise _Malformed("'state' is not pending, approved, denied or withdrawn")
    digest, nonce, reason = body.get("digest"), body.get("nonce"), body.get("reason")
    if not isinstance(digest, str) or not digest:
        raise _Malformed("'digest' is missing")
    if not isinstance(nonce, str) or not nonce:
        raise _Malformed("'nonce' is missing")
    if reason is not None and not isinstance(reason, str):
        raise _Malformed("'reason' is not a string")
    listed = body.get("approvers")
    if listed is None:
        listed = [body.get("approver")]
    if not isinstance(listed, list) or not listed:
        raise _Malformed("'approvers' is not a non-empty list")
    approvers = tuple(_approver(who) for who in listed)
    if state == "denied" and len(approvers) != 1:
        raise _Malformed("a denial names more than one approver")
    return _Decision(approve=state == "approved", digest=digest, nonce=nonce, approvers=approvers,
                     reason=_clip(reason) if reason else None)


def _approver(who: Any) -> dict[str, str]:
    if not isinstance(who, dict):
        raise _Malformed("'approver' is not an object")
    out: dict[str, str] = {}
    for claim in ("subject", "email", "name", "issuer"):
        value = who.get(claim)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _Malformed(f"the approver's '{claim}' is not a string")
        if value.strip():
            out[claim] = _clip(value.strip())
    if not any(claim in out for claim in ("subject", "email", "name")):
        raise _Malformed("the approver has no subject, email or name")
    return out


def _display(who: dict[str, str]) -> str:
    return who.get("email") or who.get("name") or who["subject"]


def _clip(text: str) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _object(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _retry(status: int) -> bool:
    return status >= 500 or status == 429


def _status(resp: httpx.Response, what: str) -> str:
    if resp.status_code in (401, 403):
        return f"the approval service refused relay's credentials (HTTP {resp.status_code})"
    body = _object(resp)
    error = body.get("error") if body is not None else None
    detail = f": {_clip(error)[:200]}" if isinstance(error, str) and error else ""
    return f"the approval service would not {what} (HTTP {resp.status_code}){detail}"


def _why(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
