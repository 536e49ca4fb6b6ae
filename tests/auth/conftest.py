"""Shared fixtures for the identity tests: one real OpenID provider and one protected MCP server per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from relay.auth.device import DeviceCode
from relay.config import IdentityConfig
from tests.support.oidc import CI_BOT, RELAY_CLI, USER_SCOPES, OidcProvider, protected_server


@pytest.fixture(scope="module")
def op() -> Iterator[OidcProvider]:
    with OidcProvider(device_interval=1) as provider:
        yield provider


@pytest.fixture(scope="module")
def mcp_url(op: OidcProvider) -> Iterator[str]:
    with protected_server(op.issuer) as url:
        yield url


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def person(op: OidcProvider, name: str = "corp") -> IdentityConfig:
    return IdentityConfig(name=name, issuer=op.issuer, client_id=RELAY_CLI, scopes=tuple(USER_SCOPES.split()),
                          store="file")


def bot(op: OidcProvider, **extra: object) -> IdentityConfig:
    fields: dict[str, object] = {"client_secret_env": "RELAY_TEST_CI_SECRET", **extra}
    return IdentityConfig(name="ci", issuer=op.issuer, client_id=str(fields.pop("client_id", CI_BOT)),
                          flow=str(fields.pop("flow", "client_credentials")), scopes=("mcp:tools",),
                          **fields)  # type: ignore[arg-type]


class User:
    """Plays the person at the provider's own pages: approves (or denies) the code relay shows."""

    def __init__(self, op: OidcProvider, *, approve: bool = True, login: str = "alice") -> None:
        self.op = op
        self.approve = approve
        self.login = login
        self.shown: list[DeviceCode] = []
        self.outcome: bool | None = None

    async def show(self, code: DeviceCode) -> None:
        self.shown.append(code)
        if self.approve:
            await anyio.to_thread.run_sync(self.op.approve_device, code.url, self.login)
        else:
            await anyio.to_thread.run_sync(self.op.deny_device, code.url)

    async def finished(self, ok: bool) -> None:
        self.outcome = ok


class Waiter(User):
    """A person who never comes back to the browser."""

    async def show(self, code: DeviceCode) -> None:
        self.shown.append(code)
