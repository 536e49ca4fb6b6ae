"""An identity's credentials for one upstream server, for the life of a session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from relay.auth import oauth
from relay.auth.grants import Grant
from relay.auth.login import Login
from relay.config import GrantConfig, IdentityConfig


@contextlib.asynccontextmanager
async def server_grant(identity: IdentityConfig, resource: str, grant: GrantConfig | None) -> AsyncIterator[Grant]:
    """Log in (from the stored login, or as a bot) and obtain the first grant before the first message, so that
    a missing login or a refused grant fails at start with one clear line."""
    async with oauth.client() as http, anyio.create_task_group() as tg:
        login = Login(identity, http)
        g = Grant(login, resource, grant or GrantConfig(), tg)
        await g.authorization()
        try:
            yield g
        finally:
            tg.cancel_scope.cancel()


async def identity_record(grant: Grant) -> dict[str, Any]:
    """Who the session acts for, for the transcript's genesis."""
    login = grant.login
    who = await login.identity()
    if who is not None:
        return who.record()
    return {"issuer": login.config.issuer, "subject": login.config.client_id, "flow": login.config.flow}
