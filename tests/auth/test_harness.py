"""The identity test harness itself: a real OpenID provider and an OAuth-protected MCP server on loopback.

Plain httpx only (relay's auth module is tested elsewhere); these tests pin what later tests rely on:
discovery, device flow (approve, deny, slow_down, expiry), refresh, revocation, token exchange
(and its refusal), client credentials, and a resource server that only takes tokens meant for it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.oidc import (
    ACCESS_TOKEN_TYPE,
    CI_BOT,
    CI_BOT_JWT,
    CI_BOT_SECRET,
    DEVICE_CODE_GRANT,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    RELAY_CLI,
    TOKEN_EXCHANGE_GRANT,
    USER_SCOPES,
    OidcProvider,
    OidcUserError,
)

pytestmark = pytest.mark.node


# `op` (the provider) and `mcp_url` (the protected server) come from tests/auth/conftest.py.


def _error(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    error: str = response.json()["error"]
    return error


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------- the provider


def test_discovery_names_every_endpoint_and_grant(op: OidcProvider) -> None:
    doc = httpx.get(op.discovery_url).raise_for_status().json()
    assert doc["issuer"] == op.issuer
    assert doc["token_endpoint"] == op.token_endpoint
    assert doc["device_authorization_endpoint"] == op.device_authorization_endpoint
    assert doc["revocation_endpoint"] == op.revocation_endpoint
    assert doc["jwks_uri"] == op.jwks_uri
    assert {DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT, "refresh_token", "client_credentials"} <= set(
        doc["grant_types_supported"]
    )
    assert {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert {"openid", "offline_access", "email", "profile", "groups"} <= set(doc["scopes_supported"])
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert [key.key_id for key in op.public_keys().keys] == ["relay-test-rs256"]


def test_device_flow_end_to_end(op: OidcProvider, mcp_url: str) -> None:
    grant = op.device_authorization(scope=f"{USER_SCOPES} mcp:tools", resource=mcp_url)
    assert grant["interval"] == 1
    assert grant["verification_uri"] == f"{op.issuer}/device"
    assert _error(op.poll_device(grant["device_code"])) == "authorization_pending"

    op.approve_device(grant["verification_uri_complete"], login="alice")
    time.sleep(1.05)  # honour the interval, or the provider answers slow_down
    tokens = _ok(op.poll_device(grant["device_code"]))

    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    access = op.decode(tokens["access_token"], audience=mcp_url)
    assert (access["sub"], access["client_id"], access["scope"]) == ("alice", RELAY_CLI, "mcp:tools")
    identity = op.decode(tokens["id_token"], audience=RELAY_CLI)
    assert identity["sub"] == "alice"
    assert identity["email"] == "alice@example.test"
    assert identity["preferred_username"] == "alice"
    assert identity["groups"] == ["payments-admins"]
    # The code is spent: a second redemption fails.
    time.sleep(1.05)
    assert _error(op.poll_device(grant["device_code"])) == "invalid_grant"


def test_polling_faster_than_the_interval_yields_slow_down(op: OidcProvider) -> None:
    grant = op.device_authorization()
    assert _error(op.poll_device(grant["device_code"])) == "authorization_pending"
    assert _error(op.poll_device(grant["device_code"])) == "slow_down"


def test_user_denial_yields_access_denied(op: OidcProvider) -> None:
    grant = op.device_authorization()
    op.deny_device(grant["user_code"])
    assert _error(op.poll_device(grant["device_code"])) == "access_denied"
    with pytest.raises(OidcUserError):
        op.approve_device(grant["user_code"])  # a denied code cannot be approved afterwards


def test_unknown_user_code_is_refused_on_the_page(op: OidcProvider) -> None:
    with pytest.raises(OidcUserError, match="refused"):
        op.approve_device("BCDF-GHJK")


def test_expired_device_code_yields_expired_token(op: OidcProvider) -> None:
    op.configure(ttl={"deviceCode": 1})
    try:
        grant = op.device_authorization()
    finally:
        op.configure(ttl={"deviceCode": 600})
    assert grant["expires_in"] == 1
    time.sleep(1.5)
    assert _error(op.poll_device(grant["device_code"])) == "expired_token"


def test_refresh_rotates_and_revocation_ends_the_grant(op: OidcProvider, mcp_url: str) -> None:
    tokens = op.login("bob", scope=f"{USER_SCOPES} mcp:tools", resource=mcp_url)
    refreshed = _ok(op.token_request({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}))
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # public client: rotated on every use
    access = op.decode(refreshed["access_token"], audience=mcp_url)
    assert access["sub"] == "bob"
    assert op.decode(refreshed["id_token"], audience=RELAY_CLI)["groups"] == ["payments-readers"]

    revoked = httpx.post(op.revocation_endpoint, data={"client_id": RELAY_CLI, "token": refreshed["refresh_token"]})
    assert revoked.status_code == 200
    reuse = op.token_request({"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]})
    assert _error(reuse) == "invalid_grant"


def test_token_exchange_issues_a_jwt_for_the_mcp_server(op: OidcProvider, mcp_url: str) -> None:
    tokens = op.login("alice")  # no resource: an opaque access token, as after `relay login`
    answer = _ok(op.exchange(tokens["access_token"], resource=mcp_url, scope="mcp:tools", requested_lifetime=60))
    assert answer["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert (answer["token_type"], answer["scope"], answer["expires_in"]) == ("Bearer", "mcp:tools", 60)
    claims = op.decode(answer["access_token"], audience=mcp_url)
    assert (claims["sub"], claims["client_id"], claims["scope"]) == ("alice", RELAY_CLI, "mcp:tools")
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]

    by_id_token = _ok(op.exchange(tokens["id_token"], subject_token_type=ID_TOKEN_TYPE, audience=mcp_url))
    claims = op.decode(by_id_token["access_token"], audience=mcp_url)
    assert (claims["sub"], claims["scope"]) == ("alice", op.resource_scopes)


@pytest.mark.parametrize("refusal", ["invalid_grant", "unauthorized_client"])
def test_token_exchange_can_be_refused(op: OidcProvider, mcp_url: str, refusal: str) -> None:
    tokens = op.login("alice")
    op.configure(tokenExchange={"refuse": refusal})
    try:
        assert _error(op.exchange(tokens["access_token"], resource=mcp_url)) == refusal
    finally:
        op.configure(tokenExchange={"refuse": None})
    _ok(op.exchange(tokens["access_token"], resource=mcp_url))


def test_token_exchange_rejects_bad_requests(op: OidcProvider, mcp_url: str) -> None:
    assert _error(op.exchange("not-a-token", resource=mcp_url)) == "invalid_grant"
    tokens = op.login("alice")
    assert _error(op.exchange(tokens["access_token"])) == "invalid_target"  # no resource
    assert _error(op.exchange(tokens["access_token"], resource="https://example.com/mcp")) == "invalid_target"
    assert _error(op.exchange(tokens["access_token"], resource=mcp_url, scope="payments:all")) == "invalid_scope"


def test_client_credentials_for_the_bots(op: OidcProvider, mcp_url: str) -> None:
    basic = _ok(op.client_credentials(resource=mcp_url, scope="mcp:tools"))
    claims = op.decode(basic["access_token"], audience=mcp_url)
    assert (claims["sub"], claims["client_id"], claims["scope"]) == (CI_BOT, CI_BOT, "mcp:tools")

    post = httpx.post(op.token_endpoint, data={"grant_type": "client_credentials", "resource": mcp_url,
                                               "client_id": CI_BOT, "client_secret": CI_BOT_SECRET})
    assert op.decode(_ok(post)["access_token"], audience=mcp_url)["sub"] == CI_BOT

    signed = _ok(op.client_credentials(client=CI_BOT_JWT, resource=mcp_url))
    assert op.decode(signed["access_token"], audience=mcp_url)["sub"] == CI_BOT_JWT

    wrong = httpx.post(op.token_endpoint, data={"grant_type": "client_credentials"}, auth=(CI_BOT, "wrong"))
    assert _error(wrong) == "invalid_client"
    assert _error(op.client_credentials(client=RELAY_CLI)) == "invalid_request"  # grant not allowed


def test_bot_exchanges_a_workload_identity(op: OidcProvider, mcp_url: str) -> None:
    workload = op.workload_token("repo:example/payments:ref:refs/heads/main")
    answer = _ok(op.exchange(workload, subject_token_type=JWT_TOKEN_TYPE, resource=mcp_url, client=CI_BOT))
    claims = op.decode(answer["access_token"], audience=mcp_url)
    assert (claims["sub"], claims["client_id"]) == ("repo:example/payments:ref:refs/heads/main", CI_BOT)

    bot = _ok(op.client_credentials(client=CI_BOT_JWT))  # opaque: no resource
    user = op.login("alice")
    acting = _ok(op.exchange(user["access_token"], resource=mcp_url, actor_token=bot["access_token"],
                             actor_token_type=ACCESS_TOKEN_TYPE, client=CI_BOT_JWT))
    claims = op.decode(acting["access_token"], audience=mcp_url)
    assert (claims["sub"], claims["act"]) == ("alice", {"sub": CI_BOT_JWT})


def test_restart_on_the_same_port_keeps_keys_and_grants() -> None:
    with OidcProvider() as provider:
        tokens = provider.login("alice")
        port, keys = provider.port, provider.public_keys()
        provider.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(provider.discovery_url)
        provider.start()
        assert provider.port == port
        assert [k.key_id for k in provider.public_keys().keys] == [k.key_id for k in keys]
        _ok(provider.token_request({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}))


# --------------------------------------------------------------------------- the protected MCP server


def _mcp_post(url: str, token: str | None, body: dict[str, Any], session: str | None = None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session:
        headers["Mcp-Session-Id"] = session
    return httpx.post(url, json=body, headers=headers, timeout=10)


def _json_rpc_result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        message = next(json.loads(d) for d in data if d and '"id"' in d)
    else:
        message = response.json()
    return message["result"]


def _call_whoami(url: str, token: str) -> dict[str, Any]:
    init = _mcp_post(url, token, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "harness", "version": "1"}}})
    _json_rpc_result(init)
    session = init.headers.get("mcp-session-id")
    _mcp_post(url, token, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    call = _mcp_post(url, token, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                  "params": {"name": "whoami", "arguments": {}}}, session)
    result = _json_rpc_result(call)
    who: dict[str, Any] = json.loads(result["content"][0]["text"])
    return who


def _assert_challenged(response: httpx.Response, mcp_url: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    metadata_url = mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge


def test_protected_server_publishes_its_metadata(op: OidcProvider, mcp_url: str) -> None:
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        metadata = httpx.get(mcp_url.replace("/mcp", path)).raise_for_status().json()
        assert metadata["resource"] == mcp_url
        assert metadata["authorization_servers"] == [op.issuer]


def test_protected_server_accepts_the_exchanged_token(op: OidcProvider, mcp_url: str) -> None:
    user = op.login("alice")
    exchanged = _ok(op.exchange(user["access_token"], resource=mcp_url, scope="mcp:tools"))["access_token"]
    who = _call_whoami(mcp_url, exchanged)
    assert (who["sub"], who["client_id"], who["scope"], who["aud"]) == ("alice", RELAY_CLI, "mcp:tools", mcp_url)


def test_protected_server_rejects_missing_foreign_and_expired_tokens(op: OidcProvider, mcp_url: str) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    _assert_challenged(_mcp_post(mcp_url, None, ping), mcp_url)

    user = op.login("alice")
    _assert_challenged(_mcp_post(mcp_url, user["access_token"], ping), mcp_url)  # opaque, not for this server
    _assert_challenged(_mcp_post(mcp_url, user["id_token"], ping), mcp_url)  # an ID token is not an access token

    other = _ok(op.exchange(user["access_token"], resource="http://127.0.0.1:1/mcp"))["access_token"]
    _assert_challenged(_mcp_post(mcp_url, other, ping), mcp_url)

    short = _ok(op.exchange(user["access_token"], resource=mcp_url, requested_lifetime=1))["access_token"]
    time.sleep(1.5)
    _assert_challenged(_mcp_post(mcp_url, short, ping), mcp_url)
