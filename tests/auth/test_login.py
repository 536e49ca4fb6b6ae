"""relay.auth.login, .device, .idtoken, .discovery against a real OpenID provider (oidc-provider on loopback):
device-flow login, denial, expiry, slow_down, refresh with rotation, an expired login, the provider down,
logout with revocation, and bots (client credentials with a secret or private_key_jwt, a workload token)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import anyio
import pytest

from relay.auth import oauth
from relay.auth.device import device_login
from relay.auth.login import Login, NotLoggedIn
from relay.errors import AuthError
from tests.auth.conftest import User, Waiter, bot, person
from tests.support.oidc import CI_BOT_JWT, CI_BOT_SECRET, OidcProvider

pytestmark = [pytest.mark.anyio, pytest.mark.node]

# The harness merges settings: a test that shortens a lifetime puts the default back explicitly.
DEFAULT_TTL = {"deviceCode": 600, "refreshToken": 86400}


async def test_device_login_stores_the_refresh_token_and_the_validated_identity(op: OidcProvider, state: Path) -> None:
    user = User(op)
    async with oauth.client() as http:
        who = await Login(person(op), http).login(user)
    assert (who.issuer, who.subject, who.email, who.groups) == (op.issuer, "alice", "alice@example.test",
                                                                ("payments-admins",))
    assert user.outcome is True and user.shown[0].user_code
    stored = state / "relay" / "identities" / "corp.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    data = json.loads(stored.read_text())
    assert data["refresh_token"] and data["identity"]["subject"] == "alice"
    assert "access_token" not in stored.read_text()  # access tokens live in memory only


async def test_a_denied_sign_in_is_a_clear_error(op: OidcProvider) -> None:
    async with oauth.client() as http:
        with pytest.raises(AuthError, match="denied"):
            await Login(person(op), http).login(User(op, approve=False))


async def test_an_expired_code_is_a_clear_error(op: OidcProvider) -> None:
    op.configure(ttl={"deviceCode": 2})
    try:
        async with oauth.client() as http:
            with pytest.raises(AuthError, match="expired"):
                await Login(person(op), http).login(Waiter(op))
    finally:
        op.configure(ttl=DEFAULT_TTL)


async def test_slow_down_adds_five_seconds_for_good(op: OidcProvider) -> None:
    waits: list[float] = []

    async def impatient(seconds: float) -> None:  # polls far sooner than asked: the provider says slow_down
        waits.append(seconds)
        await anyio.sleep(0.05)

    async with oauth.client() as http:
        login = Login(person(op), http)
        meta = await login.metadata()
        with anyio.fail_after(20):
            with pytest.raises(AuthError, match="expired"):
                op.configure(ttl={"deviceCode": 2})
                try:
                    await device_login(http, meta, login.config, Waiter(op), sleep=impatient)
                finally:
                    op.configure(ttl=DEFAULT_TTL)
    assert waits[0] == 1.0 and 6.0 in waits and waits[-1] >= 6.0  # +5 s, and it stays


async def test_refresh_rotates_and_keeps_the_new_refresh_token(op: OidcProvider, state: Path) -> None:
    async with oauth.client() as http:
        await Login(person(op), http).login(User(op))
        first = json.loads((state / "relay" / "identities" / "corp.json").read_text())["refresh_token"]
        fresh = Login(person(op), http)  # a later run: only the stored login
        subject = await fresh.subject_token()
        assert subject.token
        second = json.loads((state / "relay" / "identities" / "corp.json").read_text())["refresh_token"]
        assert second != first  # rotated and kept: the old one is dead now
        assert (await Login(person(op), http).subject_token()).token


async def test_no_login_and_an_expired_login_say_run_relay_login(op: OidcProvider) -> None:
    async with oauth.client() as http:
        with pytest.raises(NotLoggedIn, match="not logged in as 'corp'"):
            await Login(person(op), http).subject_token()
        op.configure(ttl={"refreshToken": 1})
        try:
            await Login(person(op), http).login(User(op))
            await anyio.sleep(2.5)
            with pytest.raises(NotLoggedIn) as err:
                await Login(person(op), http).subject_token()
            assert "relay login corp" in str(err.value)
        finally:
            op.configure(ttl=DEFAULT_TTL)


async def test_the_provider_down_is_a_clear_error(op: OidcProvider) -> None:
    async with oauth.client() as http:
        await Login(person(op), http).login(User(op))
        op.stop()
        try:
            with pytest.raises(AuthError, match="cannot reach the identity provider"):
                await Login(person(op), http).subject_token()
        finally:
            op.start()


async def test_logout_revokes_at_the_provider_and_forgets(op: OidcProvider, state: Path) -> None:
    async with oauth.client() as http:
        await Login(person(op), http).login(User(op))
        refresh = json.loads((state / "relay" / "identities" / "corp.json").read_text())["refresh_token"]
        assert await Login(person(op), http).logout() is True
    assert not (state / "relay" / "identities" / "corp.json").exists()
    gone = op.token_request({"grant_type": "refresh_token", "refresh_token": refresh})
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_grant"


async def test_a_bot_with_client_credentials(op: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TEST_CI_SECRET", CI_BOT_SECRET)
    async with oauth.client() as http:
        assert (await Login(bot(op), http).subject_token()).token
        monkeypatch.delenv("RELAY_TEST_CI_SECRET")
        with pytest.raises(AuthError, match=r"\$RELAY_TEST_CI_SECRET, which is not set"):
            await Login(bot(op), http).subject_token()
        monkeypatch.setenv("RELAY_TEST_CI_SECRET", "wrong-secret-value")
        with pytest.raises(AuthError, match="invalid_client") as err:
            await Login(bot(op), http).subject_token()
        assert "wrong-secret-value" not in str(err.value)


async def test_a_bot_with_private_key_jwt(op: OidcProvider, tmp_path: Path) -> None:
    key = tmp_path / "ci-bot.pem"
    key.write_bytes(op.ci_bot_key_pem())
    cfg = bot(op, client_id=CI_BOT_JWT, client_secret_env=None, private_key_file=key, key_id="ci-bot-jwt-key")
    async with oauth.client() as http:
        assert (await Login(cfg, http).subject_token()).token


async def test_a_workload_token_is_the_subject_as_it_is(op: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    token = op.workload_token()
    monkeypatch.setenv("CI_OIDC_TOKEN", token)
    cfg = bot(op, flow="token", token_env="CI_OIDC_TOKEN")
    async with oauth.client() as http:
        subject = await Login(cfg, http).subject_token()
    assert subject.token == token and subject.token_type.endswith(":jwt")


async def test_a_bot_secret_from_the_keyring(op: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """No OS keyring runs here: an in-memory keyring backend stands in for it."""
    import keyring

    from relay.auth.store import set_client_secret
    from tests.support.keyrings import MemoryKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        cfg = bot(op, client_secret_env=None, client_secret_store="keyring")
        async with oauth.client() as http:
            with pytest.raises(AuthError, match="relay login ci"):
                await Login(cfg, http).subject_token()
            set_client_secret("ci", CI_BOT_SECRET)
            assert (await Login(cfg, http).subject_token()).token
    finally:
        keyring.set_keyring(previous)
