"""relay.auth.grants against a real OpenID provider and an MCP server that takes only tokens meant for it:
token exchange bound to the server, the configured lifetime as a cap, renewal in the background, a fresh grant
after a 401, refusal, the resource-indicator mode, and bots."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from relay.auth import oauth
from relay.auth.grants import Grant
from relay.auth.login import Login
from relay.config import GrantConfig
from relay.errors import AuthError
from tests.auth.conftest import User, bot, person
from tests.support.oidc import CI_BOT_SECRET, OidcProvider

pytestmark = [pytest.mark.anyio, pytest.mark.node]


async def whoami(url: str, authorization: str) -> httpx.Response:
    """One MCP initialize against the protected server with this Authorization (the server checks it first)."""
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, headers={"authorization": authorization, "accept": "application/json, text/event-stream",
                                             "content-type": "application/json"},
                               json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                                   "protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "t", "version": "1"}}})


async def test_an_exchanged_grant_is_bound_to_the_server(op: OidcProvider, mcp_url: str) -> None:
    async with oauth.client() as http, anyio.create_task_group() as tg:
        await Login(person(op), http).login(User(op))
        grant = Grant(Login(person(op), http), mcp_url, GrantConfig(scope="mcp:tools", lifetime=60), tg)
        value = await grant.authorization()
        claims = op.decode(value.removeprefix("Bearer "), audience=mcp_url)
        assert (claims["sub"], claims["aud"], claims["scope"]) == ("alice", mcp_url, "mcp:tools")
        assert (await whoami(mcp_url, value)).status_code == 200
        assert grant.last is not None and grant.last["token_id"] == claims["jti"]
        assert value.removeprefix("Bearer ") not in repr(grant.last)
        # The same token is not good for another server.
        other = mcp_url.replace("/mcp", "/other")
        other_grant = Grant(Login(person(op), http), other, GrantConfig(), tg)
        assert (await whoami(mcp_url, await other_grant.authorization())).status_code == 401
        tg.cancel_scope.cancel()


async def test_the_configured_lifetime_caps_the_grant_and_renewal_happens_in_the_background(
        op: OidcProvider, mcp_url: str) -> None:
    async with oauth.client() as http, anyio.create_task_group() as tg:
        await Login(person(op), http).login(User(op))
        grant = Grant(Login(person(op), http), mcp_url, GrantConfig(lifetime=5), tg)
        first = await grant.authorization()
        await anyio.sleep(4.2)  # past 80 % of the 5 s cap: this request still goes with the valid grant ...
        t0 = time.monotonic()
        assert await grant.authorization() == first
        assert time.monotonic() - t0 < 0.05  # ... without waiting for the renewal it started
        with anyio.fail_after(10):
            while await grant.authorization() == first:  # noqa: ASYNC110 - polling what a real client would see
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


async def test_a_rejected_grant_is_replaced_once(op: OidcProvider, mcp_url: str) -> None:
    async with oauth.client() as http, anyio.create_task_group() as tg:
        await Login(person(op), http).login(User(op))
        grant = Grant(Login(person(op), http), mcp_url, GrantConfig(), tg)
        first = await grant.authorization()
        await grant.rejected("Bearer something-else")  # not ours: nothing changes
        assert await grant.authorization() == first
        await grant.rejected(first)
        second = await grant.authorization()
        assert second != first and (await whoami(mcp_url, second)).status_code == 200
        tg.cancel_scope.cancel()


async def test_a_refused_exchange_is_a_clear_error(op: OidcProvider, mcp_url: str) -> None:
    op.configure(tokenExchange={"refuse": "unauthorized_client"})
    try:
        async with oauth.client() as http, anyio.create_task_group() as tg:
            await Login(person(op), http).login(User(op))
            grant = Grant(Login(person(op), http), mcp_url, GrantConfig(), tg)
            with pytest.raises(AuthError, match=r"refused a grant for .*unauthorized_client"):
                await grant.authorization()
            tg.cancel_scope.cancel()
    finally:
        op.configure(tokenExchange={"refuse": None})


async def test_resource_mode_asks_for_an_access_token_for_the_server(op: OidcProvider, mcp_url: str) -> None:
    async with oauth.client() as http, anyio.create_task_group() as tg:
        await Login(person(op), http).login(User(op), resources=[mcp_url])  # as `relay login` does for such servers
        grant = Grant(Login(person(op), http), mcp_url, GrantConfig(mode="resource"), tg)
        value = await grant.authorization()
        assert op.decode(value.removeprefix("Bearer "), audience=mcp_url)["sub"] == "alice"
        # The provider rotates refresh tokens: the next grant (a renewal, the next session) needs the new one.
        again = Grant(Login(person(op), http), mcp_url, GrantConfig(mode="resource"), tg)
        assert op.decode((await again.authorization()).removeprefix("Bearer "), audience=mcp_url)["sub"] == "alice"
        tg.cancel_scope.cancel()


async def test_a_bot_gets_grants_without_a_person(op: OidcProvider, mcp_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TEST_CI_SECRET", CI_BOT_SECRET)
    async with oauth.client() as http, anyio.create_task_group() as tg:
        for mode in ("exchange", "resource"):
            grant = Grant(Login(bot(op), http), mcp_url, GrantConfig(mode=mode), tg)
            value = await grant.authorization()
            assert (await whoami(mcp_url, value)).status_code == 200
        tg.cancel_scope.cancel()
