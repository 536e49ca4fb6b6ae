"""Login in-band: `relay run` started by an assistant (no terminal) with no valid login.

Until the person signs in, every request from the client is answered with an error that carries the sign-in
URL and code: the MCP "URL elicitation required" error (-32042) when the client declared URL elicitation in its
`initialize`, a plain error whose message says it all otherwise. Relay keeps polling meanwhile; the first
request after the sign-in starts the session as usual. If the client leaves first, relay still waits for the
sign-in (until the code expires), so the login is there at the next start.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import anyio

from relay.auth.device import DeviceCode
from relay.auth.login import Login
from relay.errors import AuthError
from relay.jsonrpc import LOGIN_REQUIRED, URL_ELICITATION_REQUIRED, Direction, Kind, Message, error_message
from relay.transports import Fault, Paused, Transport

log = logging.getLogger("relay.auth")


class _Shown:
    def __init__(self) -> None:
        self.code: DeviceCode | None = None
        self.ready = anyio.Event()

    async def show(self, code: DeviceCode) -> None:
        self.code = code
        self.ready.set()
        log.warning("sign in to use this server: open %s and enter the code %s", code.verification_uri, code.user_code)

    async def finished(self, ok: bool) -> None:
        self.ready.set()


class Replay:
    """The client transport with messages already taken from it put back in front."""

    def __init__(self, inner: Transport, first: list[Message]) -> None:
        self._inner = inner
        self._first = first

    async def send(self, msg: Message) -> None:
        await self._inner.send(msg)

    async def receive(self) -> Message | Fault | Paused:
        if self._first:
            return self._first.pop(0)
        return await self._inner.receive()

    async def pause(self, request_ids: tuple[Any, ...]) -> None:
        pause = getattr(self._inner, "pause", None)
        if pause is not None:
            await pause(request_ids)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def login_in_band(client: Transport, login: Login, server: str, not_logged_in: AuthError) -> Transport | None:
    """Answer the client with the sign-in URL and code until the person signs in. Returns the client transport
    to run the session on (with the request that came after the sign-in put back), or None if the client left
    after the sign-in had started. A client that leaves before asking anything gets `not_logged_in` raised:
    nobody saw a code, so nobody is waiting to sign in."""
    shown = _Shown()
    done = anyio.Event()
    failure: list[AuthError] = []

    async def sign_in() -> None:
        try:
            await login.login(shown)
        except AuthError as exc:
            failure.append(exc)
            log.error("in-band login failed: %s", exc)
        finally:
            shown.ready.set()
            done.set()

    async with anyio.create_task_group() as tg:
        started = False
        url_mode = False
        while True:
            try:
                item = await client.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                if not started:
                    raise not_logged_in from None
                log.warning("the client left before the sign-in; relay waits for it so the next start is signed in")
                await done.wait()
                return None
            if not isinstance(item, Message) or item.kind is not Kind.REQUEST:
                continue  # notifications wait for the session; faults have nobody to answer here
            if item.method == "initialize":
                caps = item.params.get("capabilities")
                elicitation = caps.get("elicitation") if isinstance(caps, dict) else None
                url_mode = isinstance(elicitation, dict) and "url" in elicitation
            if not started:
                started = True
                tg.start_soon(sign_in)
            await shown.ready.wait()
            if done.is_set() and not failure:
                return Replay(client, [item])
            if failure:
                raise failure[0]
            await client.send(_sign_in_error(item, shown.code, login, server, url_mode))
    raise AssertionError("unreachable")  # the loop only returns or raises


def _sign_in_error(request: Message, code: DeviceCode | None, login: Login, server: str, url_mode: bool) -> Message:
    assert code is not None
    text = (f"Sign in to use {server}: open {code.verification_uri} and enter the code {code.user_code} "
            f"(identity '{login.config.name}' at {login.config.issuer}). relay is waiting; retry when you are done.")
    if url_mode:
        data = {"elicitations": [{"mode": "url", "elicitationId": secrets.token_urlsafe(12), "url": code.url,
                                  "message": text}]}
        return error_message(request.id, URL_ELICITATION_REQUIRED, text, Direction.SERVER_TO_CLIENT, data)
    return error_message(request.id, LOGIN_REQUIRED, text, Direction.SERVER_TO_CLIENT)
