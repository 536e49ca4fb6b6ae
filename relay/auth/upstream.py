"""An identity's credentials for one upstream server, for the life of a session."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx

from relay.auth import oauth
from relay.auth.discovery import issuer_of_resource
from relay.auth.grants import Grant
from relay.auth.login import Login
from relay.config import GrantConfig, IdentityConfig
from relay.errors import AuthError


@contextlib.asynccontextmanager
async def server_grant(identity: IdentityConfig, resource: str, grant: GrantConfig | None) -> AsyncIterator[Grant]:
    """Log in (from the stored login, or as a bot) and obtain the first grant before the first message, so that
    a missing login or a refused grant fails at start with one clear line."""
    config = grant or GrantConfig()
    async with oauth.client() as http:
        login = Login(await with_issuer(http, identity, [resource]), http)
        # Outside the task group, so that "not logged in" reaches the caller as itself (the in-band login).
        if config.mode == "exchange" or login.is_bot:
            await login.subject_token()
        else:
            await login.refresh_token()
        async with anyio.create_task_group() as tg:
            g = Grant(login, resource, config, tg)
            await g.authorization()
            try:
                yield g
            finally:
                tg.cancel_scope.cancel()


async def with_issuer(http: httpx.AsyncClient, identity: IdentityConfig, servers: list[str]) -> IdentityConfig:
    """The identity, with its issuer found through the first server's RFC 9728 metadata if the config names none."""
    if identity.issuer:
        return identity
    if not servers:
        raise AuthError(f"identity '{identity.name}' names no issuer and no server uses it to find one")
    return dataclasses.replace(identity, issuer=await issuer_of_resource(http, servers[0]))


async def identity_record(grant: Grant) -> dict[str, Any]:
    """Who the session acts for, for the transcript's genesis."""
    login = grant.login
    who = await login.identity()
    if who is not None:
        return who.record()
    return {"issuer": login.config.issuer, "subject": login.config.client_id, "flow": login.config.flow}
