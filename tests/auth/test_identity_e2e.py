"""Identity end to end through real processes: `relay login` / `whoami` / `logout` against a real OpenID provider,
`relay run` to an MCP server that takes only grants meant for it (renewed transparently after a 401), a bot
through `relay call`, a clear error without a login, and no token anywhere it should not be."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.oidc import CI_BOT_SECRET, RELAY_CLI, USER_SCOPES, OidcProvider, protected_server
from tests.support.processes import RELAY, RawClient, free_port, relay_env
from tests.support.transcripts import records

pytestmark = pytest.mark.node

CODE = re.compile(r"^\s+([A-Z0-9]{4}-[A-Z0-9]{4})\s*$")


def config(tmp_path: Path, op: OidcProvider, mcp_url: str, *, identity: str = "corp") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
identities:
  corp: {{issuer: "{op.issuer}", client_id: {RELAY_CLI}, scopes: [{", ".join(USER_SCOPES.split())}], store: file}}
  ci: {{issuer: "{op.issuer}", client_id: ci-bot, flow: client_credentials, client_secret_env: CI_SECRET}}
servers:
  payments:
    url: {mcp_url}
    identity: {identity}
    grant: {{mode: exchange, scope: "mcp:tools", lifetime: 5m}}
""")
    return path


def env(tmp_path: Path) -> dict[str, str]:
    return relay_env(tmp_path, RELAY_NO_BROWSER="1", NO_COLOR="1", CI_SECRET=CI_BOT_SECRET)


def login(tmp_path: Path, op: OidcProvider, cfg: Path) -> subprocess.CompletedProcess[str]:
    """`relay login corp`, with the test playing the person: it reads the code off relay's terminal output
    and approves it at the provider's own pages."""
    proc = subprocess.Popen([*RELAY, "--config", str(cfg), "login", "corp"], env=env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = CODE.match(line)
            if m:
                threading.Thread(target=op.approve_device, args=(m.group(1),), daemon=True).start()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out = proc.stdout.read()
    code = proc.wait(60)
    reader.join(5)
    return subprocess.CompletedProcess(proc.args, code, out, "".join(lines))


def secrets_in(tmp_path: Path) -> str:
    """The refresh token relay stored (the one secret that lives on disk, in the opt-in 0600 file)."""
    stored = tmp_path / "state" / "relay" / "identities" / "corp.json"
    return str(json.loads(stored.read_text())["refresh_token"])


def transcript(tmp_path: Path) -> Path:
    directory = tmp_path / "state" / "relay" / "transcripts"
    [path] = [p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"]
    return path


def test_login_whoami_logout(tmp_path: Path, op: OidcProvider, mcp_url: str) -> None:
    cfg = config(tmp_path, op, mcp_url)
    done = login(tmp_path, op, cfg)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # stdout belongs to the protocol, even here
    assert op.issuer in done.stderr and "Logged in" in done.stderr and "alice" in done.stderr
    assert "To sign in, open this page" in done.stderr
    refresh = secrets_in(tmp_path)
    who = subprocess.run([*RELAY, "--config", str(cfg), "whoami"], env=env(tmp_path), capture_output=True,
                         text=True, timeout=30)
    assert who.returncode == 0, who.stderr
    assert "subject:  alice" in who.stderr and "payments-admins" in who.stderr and op.issuer in who.stderr
    assert refresh not in who.stderr + who.stdout + done.stderr
    out = subprocess.run([*RELAY, "--config", str(cfg), "logout", "corp"], env=env(tmp_path), capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "revoked at the provider" in out.stderr
    again = subprocess.run([*RELAY, "--config", str(cfg), "whoami"], env=env(tmp_path), capture_output=True,
                           text=True, timeout=30)
    assert again.returncode == 6 and "not logged in as 'corp'" in again.stderr


def test_run_without_a_login_fails_at_start_with_one_clear_line(tmp_path: Path, op: OidcProvider, mcp_url: str) -> None:
    cfg = config(tmp_path, op, mcp_url)
    done = subprocess.run([*RELAY, "--config", str(cfg), "run", "payments"], env=env(tmp_path), input="",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 6
    assert "not logged in as 'corp'" in done.stderr and "relay login corp" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_with_a_grant_renewed_after_a_401(tmp_path: Path, op: OidcProvider) -> None:
    port = free_port()
    server = protected_server(op.issuer, port=port)
    mcp_url = server.__enter__()
    try:
        cfg = config(tmp_path, op, mcp_url)
        assert login(tmp_path, op, cfg).returncode == 0
        with RawClient([*RELAY, "--config", str(cfg), "run", "payments"], env=env(tmp_path)) as c:
            c.initialize()
            first = c.request("tools/call", {"name": "whoami", "arguments": {}})
            assert "alice" in json.dumps(first), first
            # The provider rotates its signing key and the server restarts: it no longer accepts the grant
            # relay holds (which relay still thinks valid). The next request meets a 401, relay gets a new
            # grant and sends the request again; the client sees nothing of it.
            op.rotate_signing_key()
            server.__exit__(None, None, None)
            server = protected_server(op.issuer, port=port)
            assert server.__enter__() == mcp_url
            second = c.request("tools/call", {"name": "whoami", "arguments": {}})
            assert "result" in second and "alice" in json.dumps(second), second
            assert c.close() == 0
            stderr = c.stderr
    finally:
        server.__exit__(None, None, None)
    recs = records(transcript(tmp_path))
    assert recs[0]["identity"]["subject"] == "alice" and recs[0]["identity"]["groups"] == ["payments-admins"]
    grants = [r for r in recs if r["type"] == "grant"]
    assert len(grants) == 2 and all(g["resource"] == mcp_url and g["subject"] == "alice" for g in grants)
    text = transcript(tmp_path).read_text() + stderr
    assert "eyJ" not in text  # no JWT (grant, ID token) in the transcript or the logs
    assert secrets_in(tmp_path) not in text


def test_a_bot_with_client_credentials_through_relay_call(tmp_path: Path, op: OidcProvider, mcp_url: str) -> None:
    cfg = config(tmp_path, op, mcp_url, identity="ci")
    done = subprocess.run([*RELAY, "--config", str(cfg), "call", "payments", "whoami"], env=env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ci-bot" in done.stdout and "eyJ" not in done.stdout + done.stderr
    assert CI_BOT_SECRET not in done.stdout + done.stderr
    missing = {**env(tmp_path)}
    missing.pop("CI_SECRET")
    fails = subprocess.run([*RELAY, "--config", str(cfg), "call", "payments", "whoami"], env=missing,
                           capture_output=True, text=True, timeout=60)
    assert fails.returncode == 6 and "$CI_SECRET, which is not set" in fails.stderr
    assert len(fails.stderr.strip().splitlines()) == 1  # one clear line


def _code(message: str) -> str:
    m = re.search(r"enter the code ([A-Z0-9]{4}-[A-Z0-9]{4})", message)
    assert m, message
    return m.group(1)


def test_in_band_login_through_the_mcp_client(tmp_path: Path, op: OidcProvider, mcp_url: str) -> None:
    """Spawned by an assistant with no login: the client is told where to sign in, relay polls, and the first
    request after the sign-in starts the session."""
    cfg = config(tmp_path, op, mcp_url)
    stored = tmp_path / "state" / "relay" / "identities" / "corp.json"
    with RawClient([*RELAY, "--config", str(cfg), "run", "payments"], env=env(tmp_path)) as c:
        # A client that declared URL elicitation gets MCP's "URL elicitation required" error with the URL.
        answer = c.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"url": {}}},
                                          "clientInfo": {"name": "t", "version": "1"}})
        error = answer["error"]
        assert error["code"] == -32042 and error["data"]["elicitations"][0]["mode"] == "url"
        assert error["data"]["elicitations"][0]["url"].startswith(op.issuer)
        code = _code(error["message"])
        op.approve_device(code)
        deadline = time.monotonic() + 20
        while not stored.exists():
            assert time.monotonic() < deadline, c.stderr
            time.sleep(0.1)
        c.initialize()
        result = c.request("tools/call", {"name": "whoami", "arguments": {}})
        assert "alice" in json.dumps(result)
        assert c.close() == 0


def test_in_band_login_without_url_elicitation_and_a_client_that_leaves(tmp_path: Path, op: OidcProvider,
                                                                        mcp_url: str) -> None:
    cfg = config(tmp_path, op, mcp_url)
    with RawClient([*RELAY, "--config", str(cfg), "run", "payments"], env=env(tmp_path)) as c:
        answer = c.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                          "clientInfo": {"name": "t", "version": "1"}})
        assert answer["error"]["code"] == -32004 and "Sign in to use payments" in answer["error"]["message"]
        code = _code(answer["error"]["message"])
        c.proc.stdin.close()  # the assistant gives up on the server ...
        op.approve_device(code)  # ... the person signs in anyway
        assert c.proc.wait(30) == 0
    assert (tmp_path / "state" / "relay" / "identities" / "corp.json").exists()  # the next start is signed in


def test_the_issuer_is_found_through_the_server_s_resource_metadata(tmp_path: Path, op: OidcProvider,
                                                                   mcp_url: str) -> None:
    """RFC 9728: an identity without an issuer gets the authorization server the MCP server names."""
    cfg = config(tmp_path, op, mcp_url)
    cfg.write_text(cfg.read_text().replace(f'issuer: "{op.issuer}", client_id: {RELAY_CLI}', f"client_id: {RELAY_CLI}"))
    assert f'client_id: {RELAY_CLI}, scopes' in cfg.read_text() and "corp: {client_id" in cfg.read_text()
    done = login(tmp_path, op, cfg)
    assert done.returncode == 0, done.stderr
    assert f"Logged in to {op.issuer}" in done.stderr
    out = subprocess.run([*RELAY, "--config", str(cfg), "call", "payments", "whoami"], env=env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "alice" in out.stdout, out.stderr


def test_a_login_revoked_mid_session_ends_the_session_cleanly(tmp_path: Path, op: OidcProvider, mcp_url: str) -> None:
    cfg = config(tmp_path, op, mcp_url)
    cfg.write_text(cfg.read_text().replace("lifetime: 5m", "lifetime: 3s"))
    assert login(tmp_path, op, cfg).returncode == 0
    with RawClient([*RELAY, "--config", str(cfg), "run", "payments"], env=env(tmp_path)) as c:
        c.initialize()
        assert "result" in c.request("tools/call", {"name": "whoami", "arguments": {}})
        out = subprocess.run([*RELAY, "--config", str(cfg), "logout", "corp"], env=env(tmp_path),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0
        time.sleep(3.5)  # the grant has expired and cannot be renewed
        answer = c.request("tools/call", {"name": "whoami", "arguments": {}})
        assert "error" in answer and "no grant for" in answer["error"]["message"]
        assert "not logged in as 'corp'" in answer["error"]["message"] or "expired" in answer["error"]["message"]
        assert c.proc.wait(20) == 6
    recs = records(transcript(tmp_path))
    assert recs[-1]["type"] == "seal" and recs[-1]["reason"] == "upstream_failed"
