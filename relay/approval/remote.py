"""The remote approval channel: relay's side of an HTTP approval service (docs/approval-protocol.md).

It creates the request at the service, long-polls for the decision and brings it to the broker, which checks it;
on cancellation (decided elsewhere, timed out, withdrawn) it withdraws the request at the service. The bearer
token of the configured identity authenticates relay; it never reaches a log line or an error message.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from relay.approval.broker import Broker, DecisionRefused
from relay.approval.channels import ChannelUnavailable
from relay.approval.request import ApprovalRequest
from relay.auth import oauth
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
                 login: Login | None = None) -> None:
        """`login`: the session's own login when it is the same identity (one refresh token, one user of it)."""
        self.url = config.url
        self._identity = identity
        self._login = login
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- the channel -----------------------------------------------------------------------------------------

    async def offer(self, request: ApprovalRequest, broker: Broker) -> None:
        service_id = await self._create(request)
        log.info("approval %s: offered to the approval service as %s", request.id, service_id)
        open_at_service = True
        try:
            open_at_service = await self._follow(request, broker, service_id)
        finally:
            if open_at_service:
                with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                    await self._notify("DELETE", service_id, None, "withdraw")

    async def _follow(self, request: ApprovalRequest, broker: Broker, service_id: str) -> bool:
        """Poll until the broker has a verdict; False once the service's request is settled (nothing to withdraw)."""
        failures = refusals = 0
        while broker.is_pending(request.id):
            began = time.monotonic()
            try:
                decision = await self._poll(request, service_id)
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
                await self._notify("POST", service_id, {"reason": str(exc)}, "report a refused decision on")
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
        if decision.approve and len(names) < request.approvers:
            raise broker.refuse(request.id, ", ".join(names), self.name,
                                f"request {request.id} needs {request.approvers} approvers, the decision names {len(names)}")
        for name, who in zip(names, decision.approvers, strict=True):
            broker.decide(request.id, decision.digest, approve=decision.approve, approver=name,
                          reason=decision.reason, channel=self.name, nonce=decision.nonce, identity=who)

    # -- the wire ------------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = oauth.client()  # no redirects (they would carry the token), no proxies from the env
        return self._http

    def _at(self, service_id: str | None = None, suffix: str = "") -> str:
        base = f"{self.url}/v1/approvals"
        return base if service_id is None else f"{base}/{urllib.parse.quote(service_id, safe='')}{suffix}"

    async def _headers(self) -> dict[str, str]:
        if self._identity is None and self._login is None:
            return {}
        if self._login is None:
            assert self._identity is not None
            self._login = Login(self._identity, self._client())
        try:
            token = (await self._login.subject_token()).token
        except AuthError as exc:
            raise ChannelUnavailable(
                f"relay has no token for the approval service (identity '{self._login.config.name}'): {exc}") from None
        return {"authorization": f"Bearer {token}"}

    async def _create(self, request: ApprovalRequest) -> str:
        for attempt in range(2):
            try:
                resp = await self._client().post(self._at(), json=request.public(), headers=await self._headers())
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

    async def _poll(self, request: ApprovalRequest, service_id: str) -> _Decision | None:
        wait = max(1, min(POLL_WAIT, math.ceil(request.expires_at - time.time())))
        timeout = httpx.Timeout(wait + 15.0, connect=10.0)
        try:
            resp = await self._client().get(self._at(service_id), params={"wait": str(wait)},
                                             headers=await self._headers(), timeout=timeout)
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

    async def _notify(self, method: str, service_id: str, body: dict[str, Any] | None, what: str) -> None:
        """Withdraw the request or report a refusal: best effort, the call's outcome does not depend on it."""
        url = self._at(service_id, "/refusals" if method == "POST" else "")
        try:
            with anyio.fail_after(CLEANUP_TIMEOUT):
                resp = await self._client().request(method, url, json=body, headers=await self._headers())
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
