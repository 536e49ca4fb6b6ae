"""The remote approval channel for a person: relay at the approval service as someone who logged in with the
device flow at a real OpenID provider (tests/support/oidc.py), in a real `relay run` session. The service
(tests/support/approval_service.py) checks relay's token at the provider and sees that person; another person
approves and the call runs; the person approving their own call is refused by relay even when the service lets
it through; and with `approvals.remote.grant` the service gets a token bound to its own audience, obtained afresh
once when it refuses one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from relay.auth import oauth
from relay.auth.login import Login
from tests.auth.conftest import User, person
from tests.support.approval_service import ApprovalService, SelfApproval, introspecting
from tests.support.approvals import DEMO, REFUND, answer, call, transcript
from tests.support.oidc import CI_BOT, CI_BOT_SECRET, USER_SCOPES, OidcProvider, protected_server
from tests.support.processes import RELAY, RawClient, free_port, relay_env

pytestmark = pytest.mark.node

# Approvers as the service authenticated them (the provider's users, tests/support/oidc.py USERS).
BOB = {"subject": "bob", "email": "bob@example.test", "name": "Bob Reader"}
ALICE = {"subject": "alice", "email": "alice@example.test", "name": "Alice Admin"}

CONFIG = """\
identities:
  corp: {{issuer: "{issuer}", client_id: relay-cli, scopes: [{scopes}], store: file}}
servers:
  payments:
    url: "{mcp_url}"
    identity: corp
    grant: {{scope: "mcp:tools", lifetime: 5m}}
approvals:
  timeout: 30s
  remote: {{url: "{url}", identity: corp{grant}}}
  rules:
    - match: {{tool: "{tool}"}}
      action: require_approval
      channels: [remote]
"""


@pytest.fixture(scope="module")
def op() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def mcp_url(op: OidcProvider) -> Iterator[str]:
    with protected_server(op.issuer) as url:
        yield url


@pytest.fixture
def alice(tmp_path: Path, op: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """alice logs in as identity `corp` with the device flow, into the login store the relay under test reads."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    async def login() -> None:
        async with oauth.client() as http:
            await Login(person(op), http).login(User(op, login="alice"))

    anyio.run(login)


def start(tmp_path: Path, op: OidcProvider, service: ApprovalService, *, server: str | None, tool: str,
          grant: str = "") -> RawClient:
    """`relay run` with `corp` at the approval service; `server`: the protected MCP server the session reaches as
    `corp` (the requester is then alice), or None for the demo server as a local command (requester: the OS user)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(issuer=op.issuer, scopes=", ".join(USER_SCOPES.split()), mcp_url=server or "http://x",
                                 url=service.url, grant=f", grant: {grant}" if grant else "", tool=tool))
    upstream = ["payments"] if server else ["--", *DEMO]
    c = RawClient([*RELAY, "--config", str(cfg), "run", *upstream], env=relay_env(tmp_path, NO_COLOR="1"))
    c.initialize()
    return c


def approvals(tmp_path: Path) -> list[dict[str, Any]]:
    return [r for r in transcript(tmp_path) if r["type"] == "approval"]


def stored_refresh_token(tmp_path: Path) -> str:
    return str(json.loads((tmp_path / "state" / "relay" / "identities" / "corp.json").read_text())["refresh_token"])


def test_a_person_s_call_is_approved_by_another_person_at_the_service(tmp_path: Path, op: OidcProvider, mcp_url: str,
                                                                      alice: None) -> None:
    with ApprovalService(authenticate=introspecting(op.issuer, CI_BOT, CI_BOT_SECRET)) as service, \
            start(tmp_path, op, service, server=mcp_url, tool="whoami") as c:
        call(c, 10, "whoami", {})
        [item] = service.pending(1)
        # Relay authenticated as alice (the provider's introspection names her), on her behalf.
        assert service.entries[item["service_id"]].caller == "alice"
        assert {k: item["requester"][k] for k in ("issuer", "subject", "email")} == {
            "issuer": op.issuer, "subject": "alice", "email": "alice@example.test"}
        service.decide(item["service_id"], approve=True, approver={**BOB, "issuer": op.issuer}, reason="ticket 7")
        result = answer(c, 10)
        assert not result["result"].get("isError"), result
        assert json.loads(result["result"]["content"][0]["text"])["sub"] == "alice"  # the call ran, as alice
        assert c.close() == 0
    assert stored_refresh_token(tmp_path) not in c.stderr
    records = approvals(tmp_path)
    assert [(r["decision"], r.get("by"), r.get("channel")) for r in records if r["decision"] != "requested"] == [
        ("approved", "bob@example.test", "remote")]


def test_relay_refuses_a_person_approving_their_own_call_even_when_the_service_lets_them(
        tmp_path: Path, op: OidcProvider, mcp_url: str, alice: None) -> None:
    with ApprovalService(authenticate=introspecting(op.issuer, CI_BOT, CI_BOT_SECRET)) as service, \
            start(tmp_path, op, service, server=mcp_url, tool="whoami") as c:
        call(c, 10, "whoami", {})
        [item] = service.pending(1)
        sid = item["service_id"]
        entry = service.entries[sid]
        assert entry.caller == "alice"
        with pytest.raises(SelfApproval):  # a service that does its job
            service.decide(sid, approve=True, approver=ALICE)
        # One that does not: relay refuses by subject, then by e-mail alone (in other case), and keeps waiting.
        service.decide(sid, approve=True, approver={**ALICE, "issuer": op.issuer}, check=False)
        service.wait_for(lambda: len(entry.refusals) == 1 and entry.state == "pending")
        service.decide(sid, approve=True, approver={"email": "Alice@Example.test"}, check=False)
        service.wait_for(lambda: len(entry.refusals) == 2 and entry.state == "pending")
        assert all("no self-approval" in why for why in entry.refusals)
        service.decide(sid, approve=True, approver=BOB)
        assert not answer(c, 10)["result"].get("isError")
        assert c.close() == 0
    records = [r for r in approvals(tmp_path) if r["decision"] != "requested"]
    assert [(r["decision"], r["by"]) for r in records] == [
        ("refused", "alice@example.test"), ("refused", "Alice@Example.test"), ("approved", "bob@example.test")]
    assert all("no self-approval" in r["reason"] for r in records[:2])


def test_with_a_grant_the_service_gets_a_token_bound_to_it(tmp_path: Path, op: OidcProvider, alice: None) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    check = introspecting(op.issuer, CI_BOT, CI_BOT_SECRET, audience=url)
    # A person's own access token names no audience: where the service checks it, it does not get in.
    assert check(op.login("alice")["access_token"]) is None
    with ApprovalService(authenticate=check, port=port) as service, \
            start(tmp_path, op, service, server=None, tool="refund_*", grant="{mode: exchange, lifetime: 1m}") as c:
        call(c, 10, "refund_payment", REFUND)
        [item] = service.pending(1)
        entry = service.entries[item["service_id"]]
        assert entry.caller == "alice" and len(service.tokens) == 1  # her grant, bound to the service
        # The service stops trusting that token mid-request: relay obtains a new grant once and goes on.
        service.refuse_tokens_seen()
        service.wait_for(lambda: len(service.tokens) == 2)
        service.decide(item["service_id"], approve=True, approver=BOB)
        assert not answer(c, 10)["result"].get("isError")
        assert c.close() == 0
        assert entry.refusals == [] and not entry.deleted
    refused = [i for i, (_, _, caller) in enumerate(service.log) if caller is None]
    assert len(refused) == 1 and service.log[refused[0] + 1][2] == "alice"  # one 401, then the new grant
    assert stored_refresh_token(tmp_path) not in c.stderr
    assert [r["decision"] for r in approvals(tmp_path)] == ["requested", "approved"]
    # Both grants relay obtained for the service are in the transcript, as a server's are: metadata, no token.
    grants = [r for r in transcript(tmp_path) if r["type"] == "grant" and r.get("resource") == url]
    assert len(grants) == 2 and all(g["subject"] == "alice" and g["expires_in"] <= 60 for g in grants)
    assert all("token" not in g for g in grants)
