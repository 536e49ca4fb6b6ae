"""relay.config: YAML to frozen dataclasses, and errors that name file:line and the key and suggest a fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from relay import config
from relay.config import DEFAULT_MAX_MESSAGE_BYTES, Config, ServerConfig, parse, parse_duration, parse_size
from relay.errors import ConfigError

FULL = """\
# every option relay knows today
servers:
  payments:
    url: https://mcp.example.com/mcp
    transport: streamable-http
    headers:
      Authorization: Bearer ${PAY_TOKEN}
      X-Team: ops
  legacy:
    url: http://127.0.0.1:8080/sse
    transport: sse
  local:
    command: python -m demo.server --port 0
    args: [--verbose, "two words"]
    env:
      LOG_LEVEL: debug
    cwd: /srv/demo
  listed:
    command: [node, "dist/index.js"]
relay:
  max_message_bytes: 1MiB
transcripts:
  enabled: false
  dir: /var/log/relay
masking:
approvals: {}
"""


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    return tmp_path / "config.yaml"


def fails(text: str, path: Path | None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, path)
    return info.value


# -- a valid file -----------------------------------------------------------------------------------------


def test_full_config(monkeypatch: pytest.MonkeyPatch, cfg_path: Path) -> None:
    monkeypatch.setenv("PAY_TOKEN", "tok-123")
    c = parse(FULL, cfg_path)
    assert c.path == cfg_path
    assert list(c.servers) == ["payments", "legacy", "local", "listed"]
    assert c.servers["payments"] == ServerConfig(
        name="payments", url="https://mcp.example.com/mcp", transport="streamable-http",
        headers={"Authorization": "Bearer tok-123", "X-Team": "ops"})
    assert c.servers["legacy"].transport == "sse"
    local = c.servers["local"]
    assert local.url is None
    assert local.command == ("python", "-m", "demo.server", "--port", "0", "--verbose", "two words")
    assert local.transport == "stdio"
    assert local.env == {"LOG_LEVEL": "debug"}
    assert local.cwd == "/srv/demo"
    assert c.servers["listed"].command == ("node", "dist/index.js")
    assert c.max_message_bytes == 1024 * 1024
    assert c.transcripts.enabled is False
    assert c.transcripts.directory == Path("/var/log/relay")


def test_defaults(cfg_path: Path) -> None:
    c = parse("servers:\n  a:\n    url: http://localhost:1/mcp\n", cfg_path)
    assert c.servers["a"].transport == "auto"
    assert c.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    assert c.transcripts.enabled is True
    assert c.transcripts.dir is None


@pytest.mark.parametrize("text", ["", "# nothing\n", "---\n", "servers:\n"])
def test_empty_files_give_the_default_config(text: str, cfg_path: Path) -> None:
    c = parse(text, cfg_path)
    assert c.servers == {}
    assert c.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES


def test_config_is_frozen(cfg_path: Path) -> None:
    c = parse("servers:\n  a:\n    url: http://x\n", cfg_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_message_bytes = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.servers["a"].url = "http://y"  # type: ignore[misc]


def test_describe(cfg_path: Path) -> None:
    c = parse(FULL.replace("${PAY_TOKEN}", "x"), cfg_path)
    assert c.servers["payments"].describe() == "https://mcp.example.com/mcp"
    assert c.servers["local"].describe() == "python -m demo.server --port 0 --verbose 'two words'"


def test_transcript_dir_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cfg_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    c = parse("transcripts:\n  dir: ~/t\n", cfg_path)
    assert c.transcripts.directory == tmp_path / "t"


def test_default_transcript_dir_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert Config().transcripts.directory == tmp_path / "relay" / "transcripts"


@pytest.mark.parametrize(("text", "size"), [
    ("1MiB", 1024**2), ("1 MiB", 1024**2), ("1mib", 1024**2), ("32MiB", 32 * 1024**2), ("2KB", 2000),
    ("3KiB", 3072), ("1GB", 10**9), ("1GiB", 1024**3), ("512", 512), ("512B", 512), ("7MB", 7 * 10**6),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "0MiB", "-1", "1.5MiB", "1TiB", "MiB", "1 M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("value", "size"), [("1048576", 1048576), ("'64KiB'", 65536), ("2MB", 2_000_000)])
def test_max_message_bytes(value: str, size: int, cfg_path: Path) -> None:
    assert parse(f"relay:\n  max_message_bytes: {value}\n", cfg_path).max_message_bytes == size


@pytest.mark.parametrize("value", ["0", "-5", "true", "1.5", "lots", "[1]"])
def test_bad_max_message_bytes(value: str, cfg_path: Path) -> None:
    err = fails(f"relay:\n  max_message_bytes: {value}\n", cfg_path)
    assert str(err).startswith(f"{cfg_path}:2: relay.max_message_bytes: expected a size")


# -- environment variables --------------------------------------------------------------------------------


def test_env_expansion_everywhere_a_string_goes(monkeypatch: pytest.MonkeyPatch, cfg_path: Path) -> None:
    monkeypatch.setenv("HOST", "mcp.example.com")
    monkeypatch.setenv("BIN", "/opt/srv")
    monkeypatch.setenv("EMPTY", "")
    c = parse("servers:\n"
              "  r:\n    url: https://${HOST}/mcp\n    headers: {X-Key: 'a${EMPTY}b'}\n"
              "  l:\n    command: ${BIN}/run\n    args: ['--host=${HOST}']\n    env: {H: $HOST}\n", cfg_path)
    assert c.servers["r"].url == "https://mcp.example.com/mcp"
    assert c.servers["r"].headers == {"X-Key": "ab"}
    assert c.servers["l"].command == ("/opt/srv/run", "--host=mcp.example.com")
    assert c.servers["l"].env == {"H": "$HOST"}  # only ${NAME} is expanded


def test_unset_env_variable_names_file_line_key_and_variable(monkeypatch: pytest.MonkeyPatch, cfg_path: Path) -> None:
    monkeypatch.delenv("RELAY_TEST_UNSET_TOKEN", raising=False)
    err = fails("servers:\n  pay:\n    url: https://x\n    headers:\n"
                "      Authorization: Bearer ${RELAY_TEST_UNSET_TOKEN}\n", cfg_path)
    assert str(err).startswith(f"{cfg_path}:5: servers.pay.headers.Authorization: "
                               "environment variable RELAY_TEST_UNSET_TOKEN is not set")
    assert err.hint is not None
    assert "RELAY_TEST_UNSET_TOKEN" in err.hint
    assert err.exit_code == 2


# -- mistakes ---------------------------------------------------------------------------------------------


def test_unknown_server_key_suggests_the_nearest(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: http://x\n    hedaers: {}\n", cfg_path)
    assert err.message == f"{cfg_path}:4: servers.a.hedaers: unknown key"
    assert err.hint == "did you mean 'headers'?"


def test_unknown_key_without_a_near_match_lists_the_valid_ones(cfg_path: Path) -> None:
    err = fails("relay:\n  zzz: 1\n", cfg_path)
    assert err.message == f"{cfg_path}:2: relay.zzz: unknown key"
    assert err.hint == "valid keys: max_message_bytes"


def test_unknown_top_level_key(cfg_path: Path) -> None:
    err = fails("sever: {}\n", cfg_path)
    assert err.message == f"{cfg_path}:1: sever: unknown key"
    assert err.hint == "did you mean 'servers'?"


def test_unknown_key_points_at_the_key_not_its_value(cfg_path: Path) -> None:
    # The misspelt key is on line 2; its block value starts on line 3.
    err = fails("# comment\nsevers:\n  a:\n    url: http://x\n", cfg_path)
    assert err.message.startswith(f"{cfg_path}:2: severs: unknown key")


def test_unknown_transcripts_key(cfg_path: Path) -> None:
    err = fails("transcripts:\n  directory: /tmp\n", cfg_path)
    assert err.message == f"{cfg_path}:2: transcripts.directory: unknown key"
    assert err.hint == "did you mean 'dir'?"


def test_bad_transport_suggests_the_nearest(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: http://x\n    transport: streamable_http\n", cfg_path)
    assert err.message == f"{cfg_path}:4: servers.a.transport: 'streamable_http' is not valid"
    assert err.hint == "did you mean 'streamable-http'?"


def test_bad_transport_without_a_near_match_lists_the_choices(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: http://x\n    transport: carrier-pigeon\n", cfg_path)
    assert err.message.startswith(f"{cfg_path}:4: servers.a.transport:")
    assert err.hint == "one of: auto, streamable-http, sse, stdio"


@pytest.mark.parametrize(("body", "line", "message"), [
    ("    command: srv\n    transport: sse\n", 4, "servers.a.transport: 'sse' needs a 'url'"),
    ("    url: http://x\n    transport: stdio\n", 4, "servers.a.transport: 'stdio' needs a 'command'"),
])
def test_transport_that_does_not_fit_the_server(body: str, line: int, message: str, cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n" + body, cfg_path)
    assert err.message == f"{cfg_path}:{line}: {message}"


def test_url_and_command(cfg_path: Path) -> None:
    err = fails("servers:\n  both:\n    url: http://x\n    command: srv\n", cfg_path)
    assert err.message == f"{cfg_path}:3: servers.both: has both 'url' and 'command'"
    assert err.hint is not None


def test_neither_url_nor_command(cfg_path: Path) -> None:
    err = fails("servers:\n  none:\n    headers: {A: b}\n", cfg_path)
    assert err.message == f"{cfg_path}:3: servers.none: has neither 'url' nor 'command'"


@pytest.mark.parametrize("body", ["  a:\n", "  a: {}\n"])
def test_empty_server_entry(body: str, cfg_path: Path) -> None:
    err = fails("servers:\n" + body, cfg_path)
    assert err.message.startswith(f"{cfg_path}:2: servers.a: empty server entry")
    assert err.hint == "give it a 'url:' or a 'command:'"


@pytest.mark.parametrize("url", ["ftp://x", "localhost:8080/mcp", "ws://x/mcp"])
def test_url_must_be_http(url: str, cfg_path: Path) -> None:
    err = fails(f"servers:\n  a:\n    transport: auto\n    url: {url}\n", cfg_path)
    assert err.message == f"{cfg_path}:4: servers.a.url: '{url}' is not an http(s) URL"


def test_args_need_a_command_and_a_list(cfg_path: Path) -> None:
    assert fails("servers:\n  a:\n    url: http://x\n    args: [a]\n", cfg_path).message == \
        f"{cfg_path}:4: servers.a.args: 'args' needs a 'command'"
    assert fails("servers:\n  a:\n    command: s\n    args: --x\n", cfg_path).message == \
        f"{cfg_path}:4: servers.a.args: expected a list of strings"


def test_empty_command(cfg_path: Path) -> None:
    assert fails("servers:\n  a:\n    command: ''\n", cfg_path).message == \
        f"{cfg_path}:3: servers.a.command: empty command"


IDENTITIES = """\
identities:
  corp:   {issuer: https://login.example.com/, client_id: relay-cli, scopes: [openid, profile, email, offline_access], flow: device}
  ci:     {issuer: https://login.example.com, client_id: ci-bot, flow: client_credentials, client_secret_env: RELAY_CI_SECRET}
  wl:     {issuer: https://login.example.com, client_id: ci-bot, flow: token, token_env: CI_OIDC_TOKEN, store: file}
servers:
  payments:
    url: https://mcp.payments.internal/mcp
    identity: corp
    grant: {mode: exchange, resource: https://mcp.payments.internal/mcp, scope: payments:read, lifetime: 5m}
  plain:
    url: https://other/mcp
    identity: ci
"""


def test_identities_and_grants_in_the_issue_s_shape(cfg_path: Path) -> None:
    c = parse(IDENTITIES, cfg_path)
    corp, ci, wl = c.identities["corp"], c.identities["ci"], c.identities["wl"]
    assert (corp.issuer, corp.client_id, corp.flow, corp.scopes) == (
        "https://login.example.com", "relay-cli", "device", ("openid", "profile", "email", "offline_access"))
    assert (ci.flow, ci.client_secret_env, wl.flow, wl.token_env, wl.store) == (
        "client_credentials", "RELAY_CI_SECRET", "token", "CI_OIDC_TOKEN", "file")
    pay = c.servers["payments"]
    assert pay.identity == "corp" and pay.grant is not None
    assert (pay.grant.mode, pay.grant.resource, pay.grant.scope, pay.grant.lifetime) == (
        "exchange", "https://mcp.payments.internal/mcp", "payments:read", 300.0)
    assert c.servers["plain"].grant is not None and c.servers["plain"].grant.mode == "exchange"  # the default
    assert c.identity("corp") is corp


@pytest.mark.parametrize(("text", "message"), [
    ("identities:\n  a: {client_id: x}\n", "identities.a: needs 'issuer'"),  # and no server to find it through
    ("identities:\n  a: {issuer: https://x}\n", "identities.a: needs 'client_id'"),
    ("identities:\n  a: {issuer: ftp://x, client_id: x}\n", "identities.a.issuer: 'ftp://x' is not an http(s) URL"),
    ("identities:\n  a: {issuer: https://x, client_id: x, flow: magic}\n", "identities.a.flow: 'magic' is not valid"),
    ("identities:\n  a: {issuer: https://x, client_id: x, flow: client_credentials}\n",
     "flow client_credentials needs 'client_secret_env', 'client_secret_store: keyring' or 'private_key_file'"),
    ("identities:\n  a: {issuer: https://x, client_id: x, flow: token}\n", "flow token needs 'token_file' or 'token_env'"),
    ("servers:\n  a:\n    url: http://x\n    identity: corp\n", "servers.a.identity: no identity named 'corp'"),
    ("servers:\n  a:\n    url: http://x\n    grant: {mode: exchange}\n", "a grant needs an 'identity'"),
    ("identities:\n  c: {issuer: https://x, client_id: x}\nservers:\n  a:\n    command: [x]\n    identity: c\n",
     "an identity is for a server with a 'url'"),
    ("identities:\n  c: {issuer: https://x, client_id: x}\nservers:\n  a:\n    url: http://x\n    identity: c\n"
     "    grant: {mode: swap}\n", "servers.a.grant.mode: 'swap' is not valid"),
])
def test_identity_errors(text: str, message: str, cfg_path: Path) -> None:
    assert message in fails(text, cfg_path).message


def test_unknown_identity_names_its_line_and_the_nearest(cfg_path: Path) -> None:
    err = fails("identities:\n  corp: {issuer: https://x, client_id: x}\nservers:\n  a:\n    url: http://x\n"
                "    identity: crop\n", cfg_path)
    assert err.message.startswith(f"{cfg_path}:6: servers.a.identity") and err.hint == "did you mean 'corp'?"


def test_duplicate_keys_name_the_line_of_the_second(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: http://x\n    url: http://y\n", cfg_path)
    assert err.message.startswith(f"{cfg_path}:4:")
    assert "appears twice" in err.message


def test_duplicate_keys_name_the_dotted_key(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: http://x\n    url: http://y\n", cfg_path)
    assert err.message == f"{cfg_path}:4: servers.a.url: appears twice in the same mapping"


def test_duplicate_server_names(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: http://x\n  a:\n    url: http://y\n", cfg_path)
    assert err.message == f"{cfg_path}:4: servers.a: appears twice in the same mapping"


@pytest.mark.parametrize(("text", "line"), [
    ("servers:\n  a: [\n", 3),
    ("servers:\n\turl: x\n", 2),
    ("a: 1\n---\nb: 2\n", 2),
    ("servers: {a: b\n", 2),
])
def test_invalid_yaml(text: str, line: int, cfg_path: Path) -> None:
    err = fails(text, cfg_path)
    assert err.message.startswith(f"{cfg_path}:{line}: not valid YAML: ")


def test_yaml_with_a_control_character_is_a_config_error(cfg_path: Path) -> None:
    # PyYAML's reader rejects it with a ReaderError, which is not a MarkedYAMLError.
    err = fails("servers:\n  a:\n    url: http://x\x07\n", cfg_path)
    assert str(cfg_path) in err.message
    assert "not valid YAML" in err.message


@pytest.mark.parametrize("value", ["!foo http://x", "!!int abc", "!!float abc"])
def test_yaml_tags_that_cannot_be_constructed_are_config_errors(value: str, cfg_path: Path) -> None:
    err = fails(f"servers:\n  a:\n    url: {value}\n", cfg_path)
    assert err.message.startswith(f"{cfg_path}:3:")


def test_an_empty_approvals_section_is_the_default_and_unknown_keys_are_refused(cfg_path: Path) -> None:
    # Rule parsing and evaluation are tested in tests/approval/test_policy.py.
    assert parse("approvals:\n", cfg_path).approvals == config.ApprovalConfig()
    assert parse("approvals: {}\n", cfg_path).approvals == config.ApprovalConfig()
    err = fails("approvals:\n  anything: true\n", cfg_path)
    assert err.message == f"{cfg_path}:2: approvals.anything: unknown key"


def test_masking_is_on_by_default_and_configurable(cfg_path: Path) -> None:
    assert parse("servers: {}\n", cfg_path).masking.enabled
    cfg = parse("masking:\n  pan: bin_last4\n  client_requests: block\n  rules:\n"
                "    - {name: acct, pattern: 'ACCT-\\d+', replace: '[A]'}\n    - {name: ssn, keys: [ssn]}\n", cfg_path)
    assert (cfg.masking.pan, cfg.masking.client_requests) == ("bin_last4", "block")
    assert [r.name for r in cfg.masking.rules] == ["acct", "ssn"] and cfg.masking.rules[1].replace == "[SSN REDACTED]"
    assert not parse("masking:\n  unsafe_disable: true\n", cfg_path).masking.enabled


@pytest.mark.parametrize(("text", "problem"), [
    ("masking:\n  pan: last5\n", "masking.pan: 'last5' is not valid"),
    ("masking:\n  enabled: false\n", "masking.enabled: unknown key"),
    ("masking:\n  rules:\n    - {name: x, pattern: '('}\n", "masking.rules[0].pattern: not a valid regular expression"),
    ("masking:\n  rules:\n    - {name: x}\n", "masking.rules[0]: a rule needs a 'pattern' or 'keys'"),
])
def test_masking_config_errors(text: str, problem: str, cfg_path: Path) -> None:
    assert problem in fails(text, cfg_path).message


@pytest.mark.parametrize(("text", "key", "got"), [
    ("servers: [a, b]\n", "servers", "a list"),
    ("servers:\n  a: http://x\n", "servers.a", "str"),
    ("servers:\n  a:\n    url: http://x\n    headers: [A]\n", "servers.a.headers", "a list"),
    ("relay: 5\n", "relay", "int"),
    ("transcripts: true\n", "transcripts", "a boolean"),
])
def test_non_mapping_names_the_key_and_what_it_got(text: str, key: str, got: str, cfg_path: Path) -> None:
    err = fails(text, cfg_path)
    assert err.message.endswith(f": {key}: expected a mapping, got {got}")
    assert err.message.startswith(f"{cfg_path}:")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_top_level_must_be_a_mapping(text: str, cfg_path: Path) -> None:
    err = fails(text, cfg_path)
    assert err.message.startswith(f"{cfg_path}:1: expected a mapping, got ")


@pytest.mark.parametrize(("text", "message"), [
    ("transcripts:\n  enabled: yes please\n", "transcripts.enabled: expected true or false, got str"),
    ("servers:\n  a:\n    url: [http://x]\n", "servers.a.url: expected a string, got a list"),
    ("servers:\n  a:\n    url: http://x\n    headers: {A: true}\n", "servers.a.headers.A: expected a string, got a boolean"),
    ("servers:\n  a:\n    url: http://x\n    cwd:\n", "servers.a.cwd: expected a string, got nothing"),
])
def test_wrong_value_types(text: str, message: str, cfg_path: Path) -> None:
    assert fails(text, cfg_path).message.endswith(message)


def test_errors_without_a_path_name_the_line(cfg_path: Path) -> None:
    err = fails("servers:\n  a:\n    url: ftp://x\n", None)
    assert err.message == "line 3: servers.a.url: 'ftp://x' is not an http(s) URL"


# -- server lookup ----------------------------------------------------------------------------------------


def test_server_lookup_suggests_a_near_name(cfg_path: Path) -> None:
    c = parse("servers:\n  payments:\n    url: http://x\n  github:\n    url: http://y\n", cfg_path)
    assert c.server("payments").url == "http://x"
    with pytest.raises(ConfigError) as info:
        c.server("payment")
    assert info.value.message == f"no server named 'payment' in {cfg_path}"
    assert info.value.hint == "did you mean 'payments'?"
    with pytest.raises(ConfigError) as info:
        c.server("zzzz")
    assert info.value.hint == "known servers: github, payments"


def test_server_lookup_without_a_config_file() -> None:
    with pytest.raises(ConfigError) as info:
        Config().server("x")
    assert "(no config file found)" in info.value.message
    assert info.value.hint == "add it under 'servers:' or use --url / -- COMMAND"


# -- load -------------------------------------------------------------------------------------------------

VALID = "servers:\n  a:\n    url: http://localhost/mcp\n"


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """XDG_CONFIG_HOME points into tmp_path and RELAY_CONFIG is unset; returns the default config path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("RELAY_CONFIG", raising=False)
    return tmp_path / "xdg" / "relay" / "config.yaml"


def test_load_missing_default_file_is_an_empty_config(isolated: Path) -> None:
    assert not isolated.exists()
    c = config.load()
    assert c.path is None
    assert c.servers == {}


def test_load_default_file(isolated: Path) -> None:
    isolated.parent.mkdir(parents=True)
    isolated.write_text(VALID)
    c = config.load()
    assert c.path == isolated
    assert list(c.servers) == ["a"]


def test_load_relay_config_env_wins_over_default(isolated: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    isolated.parent.mkdir(parents=True)
    isolated.write_text("servers:\n  default:\n    url: http://d\n")
    named = tmp_path / "named.yaml"
    named.write_text(VALID)
    monkeypatch.setenv("RELAY_CONFIG", str(named))
    c = config.load()
    assert c.path == named
    assert list(c.servers) == ["a"]


def test_load_explicit_path_wins_over_relay_config(isolated: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env.yaml"
    env_file.write_text("servers:\n  env:\n    url: http://e\n")
    monkeypatch.setenv("RELAY_CONFIG", str(env_file))
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(VALID)
    assert list(config.load(str(explicit)).servers) == ["a"]


@pytest.mark.parametrize("via", ["explicit", "env"])
def test_load_named_file_must_exist(via: str, isolated: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    if via == "env":
        monkeypatch.setenv("RELAY_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="does not exist") as info:
        config.load(str(missing) if via == "explicit" else None)
    assert str(missing) in info.value.message


def test_load_expands_user_in_explicit_path(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "c.yaml").write_text(VALID)
    assert config.load("~/c.yaml").path == tmp_path / "c.yaml"


def test_load_errors_name_the_file(isolated: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  a:\n    url: ftp://x\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(bad))
    assert info.value.message.startswith(f"{bad}:3: servers.a.url:")


def test_load_unreadable_file(isolated: Path, tmp_path: Path) -> None:
    not_utf8 = tmp_path / "latin1.yaml"
    not_utf8.write_bytes(b"servers: \xe9\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(str(not_utf8))
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(str(tmp_path))  # a directory


def test_transcript_signing_and_fsync_options(cfg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAY_KEY_STORE", raising=False)
    c = parse("transcripts:\n  fsync: always\n  fsync_interval: 250ms\n  key_store: file\n"
              "  key_file: ~/k.pem\n  unsafe_continue_on_error: true\n", cfg_path)
    t = c.transcripts
    assert (t.fsync, t.fsync_interval, t.key_store, t.unsafe_continue_on_error) == ("always", 0.25, "file", True)
    assert t.key_file == Path("~/k.pem").expanduser()
    d = parse("", cfg_path).transcripts
    assert (d.fsync, d.fsync_interval, d.effective_key_store, d.unsafe_continue_on_error) == (
        "interval", 0.1, "keyring", False)
    monkeypatch.setenv("RELAY_KEY_STORE", "file")
    assert d.effective_key_store == "file"
    monkeypatch.setenv("RELAY_KEY_STORE", "nonsense")
    assert d.effective_key_store == "keyring"


@pytest.mark.parametrize(("text", "message"), [
    ("transcripts:\n  fsync: sometimes\n", "transcripts.fsync: 'sometimes' is not valid"),
    ("transcripts:\n  fsync_interval: soon\n", "transcripts.fsync_interval: expected a duration"),
    ("transcripts:\n  key_store: vault\n", "transcripts.key_store: 'vault' is not valid"),
    ("collector:\n  batch_size: 10\n", "collector: needs a 'url'"),
    ("collector:\n  url: ftp://x\n", "collector.url: 'ftp://x' is not an http(s) URL"),
    ("collector:\n  url: http://x\n  batch_size: 0\n", "collector.batch_size: expected a positive whole number"),
    ("collector:\n  url: http://x\n  auth: {token: abc}\n", "collector.auth.token: unknown key"),
])
def test_transcript_and_collector_errors(text: str, message: str, cfg_path: Path) -> None:
    assert message in fails(text, cfg_path).message


def test_collector_section(cfg_path: Path) -> None:
    c = parse("collector:\n  url: http://127.0.0.1:9/c/\n  auth: {bearer_env: TOK}\n  batch_size: 50\n"
              "  interval: 2s\n  required: true\n  max_lag: 1m\n", cfg_path).collector
    assert (c.url, c.bearer_env, c.batch_size, c.interval, c.required, c.max_lag) == (
        "http://127.0.0.1:9/c", "TOK", 50, 2.0, True, 60.0)
    assert parse("collector:\n", cfg_path).collector.url is None


@pytest.mark.parametrize(("text", "seconds"), [("100ms", 0.1), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2", 2.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


# -- approvals.remote -------------------------------------------------------------------------------------

_BOT = "identities:\n  ci: {issuer: https://login.example, client_id: ci-bot, flow: client_credentials, " \
       "client_secret_env: S}\n"


def test_the_remote_approval_service(cfg_path: Path) -> None:
    c = parse(_BOT + "approvals:\n  remote: {url: 'https://approvals.example/relay/', identity: ci}\n  rules:\n"
              "    - {match: {tool: x}, action: require_approval, channels: [remote]}\n", cfg_path)
    assert c.approvals.remote == config.RemoteApprovalConfig(url="https://approvals.example/relay", identity="ci")
    anonymous = parse("approvals:\n  remote: {url: 'http://127.0.0.1:9'}\n", cfg_path).approvals.remote
    assert anonymous == config.RemoteApprovalConfig(url="http://127.0.0.1:9", identity=None)
    assert parse("approvals:\n  remote:\n", cfg_path).approvals.remote is None
    # Remote next to local is fine without a service: local still decides.
    mixed = parse("approvals:\n  rules:\n    - {action: require_approval, channels: [local, remote]}\n", cfg_path)
    assert mixed.approvals.remote is None and mixed.approvals.rules[0].channels == ("local", "remote")


@pytest.mark.parametrize(("text", "message"), [
    ("approvals:\n  remote: {identity: ci}\n", ":2: approvals.remote: needs a 'url' (the approval service)"),
    ("approvals:\n  remote: {url: 'ftp://x'}\n", ":2: approvals.remote.url: 'ftp://x' is not an http(s) URL"),
    ("approvals:\n  remote: {url: 'https://x', token: abc}\n", ":2: approvals.remote.token: unknown key"),
    ("approvals:\n  remote: https://x\n", ":2: approvals.remote: expected a mapping, got str"),
    (_BOT + "approvals:\n  remote:\n    url: https://x\n    identity: cis\n",
     ":6: approvals.remote.identity: no identity named 'cis' (did you mean 'ci'?)"),
    ("approvals:\n  rules:\n    - match: {tool: x}\n      action: require_approval\n      channels: [remote]\n",
     ":5: approvals.rules[0].channels: channel 'remote' needs 'approvals.remote'"),
    ("approvals:\n  rules:\n    - {action: require_approval, channels: remote}\n",
     ":3: approvals.rules[0].channels: channel 'remote' needs 'approvals.remote'"),
])
def test_remote_approval_errors_name_file_line_and_key(text: str, message: str, cfg_path: Path) -> None:
    assert str(fails(text, cfg_path)).startswith(f"{cfg_path}{message}")


def test_the_remote_identity_needs_an_issuer(cfg_path: Path) -> None:
    text = ("servers:\n  p: {url: 'https://mcp.example/mcp', identity: corp}\n"
            "identities:\n  corp: {client_id: relay-cli}\n"
            "approvals:\n  remote: {url: 'https://x', identity: corp}\n")
    err = fails(text, cfg_path)
    assert err.message == f"{cfg_path}:6: approvals.remote.identity: identity 'corp' names no 'issuer'"
    assert err.hint is not None and "identities.corp.issuer" in err.hint


def test_the_remote_approval_grant(cfg_path: Path) -> None:
    remote = "approvals:\n  remote:\n    url: https://approvals.example/relay\n    identity: ci\n"
    c = parse(_BOT + remote + "    grant: {mode: resource, resource: 'https://approvals.example', audience: approvals,"
              " scope: 'approvals:write', lifetime: 2m}\n", cfg_path)
    assert c.approvals.remote is not None and c.approvals.remote.grant == config.GrantConfig(
        mode="resource", resource="https://approvals.example", audience="approvals", scope="approvals:write",
        lifetime=120.0)
    # The server's defaults: token exchange, for the service's url (filled in when the grant is got).
    for text in ("    grant: {}\n", "    grant:\n", "    grant: {lifetime: 5m}\n"):
        defaults = parse(_BOT + remote + text, cfg_path).approvals.remote
        assert defaults is not None and defaults.grant is not None
        assert (defaults.grant.mode, defaults.grant.resource, defaults.grant.audience) == ("exchange", None, None)
    # No `grant`: the identity's own access token, as before.
    plain = parse(_BOT + remote, cfg_path).approvals.remote
    assert plain == config.RemoteApprovalConfig(url="https://approvals.example/relay", identity="ci", grant=None)


_REMOTE = _BOT + "approvals:\n  remote:\n    url: https://x\n    identity: ci\n"


@pytest.mark.parametrize(("text", "message"), [
    ("approvals:\n  remote:\n    url: https://x\n    grant: {mode: exchange}\n",
     ":4: approvals.remote.grant: a grant needs an 'identity' to get it with"),
    (_REMOTE + "    grant: {mode: swap}\n", ":7: approvals.remote.grant.mode: 'swap' is not valid"),
    (_REMOTE + "    grant: {lifetime: 5m, ttl: 5m}\n", ":7: approvals.remote.grant.ttl: unknown key"),
    (_REMOTE + "    grant:\n      lifetime: soon\n",
     ":8: approvals.remote.grant.lifetime: expected a duration such as 100ms, 30s or 5m, got 'soon'"),
    (_REMOTE + "    grant: exchange\n", ":7: approvals.remote.grant: expected a mapping, got str"),
    (_REMOTE + "    grant: {resource: [a, b]}\n", ":7: approvals.remote.grant.resource: expected a string, got a list"),
])
def test_remote_approval_grant_errors_name_file_line_and_key(text: str, message: str, cfg_path: Path) -> None:
    assert str(fails(text, cfg_path)).startswith(f"{cfg_path}{message}")
