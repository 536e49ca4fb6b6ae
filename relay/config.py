"""Configuration: YAML in, frozen dataclasses out. Every error names the file, the line and the key, and a fix."""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay import paths
from relay.errors import ConfigError

if TYPE_CHECKING:
    import yaml

TRANSPORTS = ("auto", "streamable-http", "sse", "stdio")
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
FLOWS = ("device", "client_credentials", "token")
GRANT_MODES = ("exchange", "resource")
FSYNC_POLICIES = ("always", "interval")
KEY_STORES = ("keyring", "file")
PAN_MODES = ("last4", "bin_last4", "token", "redact")
CLIENT_MODES = ("pass", "mask", "block")
APPROVAL_ACTIONS = ("allow", "require_approval", "deny")
APPROVAL_DEFAULTS = ("allow", "deny")
APPROVAL_CHANNELS = ("local", "tty", "elicitation", "remote")
ARG_OPS = ("eq", "in", "gt", "lt", "regex", "exists")
# MCP ToolAnnotations (spec 2025-06-18): a rule may only name these, so a typo cannot silently never match.
TOOL_ANNOTATIONS = ("title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


@dataclass(frozen=True)
class IdentityConfig:
    """Who relay is when it talks to servers: a person (device flow) or a bot (client credentials, a token)."""

    name: str
    issuer: str  # "": found through the server's RFC 9728 protected-resource metadata
    client_id: str
    flow: str = "device"
    scopes: tuple[str, ...] = ("openid", "profile", "email", "offline_access")
    # Bots: the NAME of the environment variable holding the client secret (never the secret itself), or
    # "keyring": the secret is in the OS keyring, put there with `relay login IDENTITY`.
    client_secret_env: str | None = None
    client_secret_store: str | None = None
    # Bots with private_key_jwt (RFC 7523): a PEM private key file; and its key id if the provider wants one.
    private_key_file: Path | None = None
    key_id: str | None = None
    # flow "token": a workload identity token (e.g. a CI system's OIDC token), from a file or a variable.
    token_file: Path | None = None
    token_env: str | None = None
    # Where refresh tokens live: the OS keyring (default) or a 0600 file the user opts into.
    store: str = "keyring"


@dataclass(frozen=True)
class GrantConfig:
    """How relay gets a short-lived token for one server from the identity's login."""

    mode: str = "exchange"  # RFC 8693 token exchange; "resource": an access token for the resource (RFC 8707)
    resource: str | None = None  # default: the server's URL
    audience: str | None = None
    scope: str | None = None
    lifetime: float | None = None  # seconds asked for; the provider may give less


@dataclass(frozen=True)
class ServerConfig:
    name: str
    url: str | None = None
    command: tuple[str, ...] = ()
    transport: str = "auto"
    headers: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    identity: str | None = None
    grant: GrantConfig | None = None

    def describe(self) -> str:
        return self.url if self.url else shlex.join(self.command)


@dataclass(frozen=True)
class TranscriptConfig:
    enabled: bool = True
    dir: Path | None = None  # None: the XDG state default
    fsync: str = "interval"  # or "always"
    fsync_interval: float = 0.1  # seconds; group commit for fsync "interval"
    # Where the host signing key lives; RELAY_KEY_STORE overrides (bots on machines without a keyring).
    key_store: str = "keyring"
    key_file: Path | None = None
    # Forward messages even when they cannot be recorded (logged, and counted in the transcript later).
    unsafe_continue_on_error: bool = False

    @property
    def directory(self) -> Path:
        return self.dir if self.dir is not None else paths.default_transcript_dir()

    @property
    def effective_key_store(self) -> str:
        env = os.environ.get("RELAY_KEY_STORE")
        return env if env in KEY_STORES else self.key_store


@dataclass(frozen=True)
class CollectorConfig:
    """Where transcripts are shipped (docs/collector-protocol.md). No url: shipping off."""

    url: str | None = None
    # Name of the environment variable holding a bearer token for the collector (never the token itself).
    bearer_env: str | None = None
    batch_size: int = 100
    interval: float = 1.0  # seconds between shipping rounds
    # required: the data path stops (fails closed) when the oldest unacknowledged record is older than max_lag.
    required: bool = False
    max_lag: float = 30.0


@dataclass(frozen=True)
class MaskingRule:
    """An organisation's own sensitive field: a regex and its replacement, and/or JSON key names."""

    name: str
    replace: str
    pattern: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaskingConfig:
    # Off only with `unsafe_disable: true`: a relay that passes card data must say so every time.
    enabled: bool = True
    pan: str = "last4"
    client_requests: str = "pass"
    rules: tuple[MaskingRule, ...] = ()


@dataclass(frozen=True)
class ApprovalRule:
    """One entry of `approvals.rules`; relay.approval.policy compiles it. Globs are fnmatch, case-sensitive."""

    index: int  # position in the list (0-based): "rule 2"
    line: int  # where it stands in the config file
    server: str | None  # glob; None: any server
    tool: str | None  # glob; None: any tool
    annotations: Mapping[str, Any]  # MCP tool annotation -> value; all must equal
    args: Mapping[str, Mapping[str, Any]]  # JSON pointer (RFC 6901) -> {op: operand}; every op must hold
    identity: str | None  # glob on the caller's subject, email or name
    groups: tuple[str, ...]  # the caller must be in at least one (empty: no condition)
    action: str  # allow | require_approval | deny
    reason: str | None  # shown to the agent (deny) or the approver (require_approval)
    channels: tuple[str, ...] = ("local",)  # require_approval only
    approvers: int = 1  # distinct approvers needed (require_approval only)
    timeout: float | None = None  # seconds; None: the section's timeout


@dataclass(frozen=True)
class RemoteApprovalConfig:
    """The remote approval channel: an HTTP approval service (docs/approval-protocol.md)."""

    url: str  # base URL, without a trailing slash
    identity: str | None  # the entry of `identities:` whose token relay presents; None: no Authorization header
    # A token bound to the service, got with the identity's login (the server's `grant:` shape; `resource`
    # defaults to `url`). None: the identity's own access token, as before grants existed.
    grant: GrantConfig | None = None


@dataclass(frozen=True)
class ApprovalConfig:
    default: str = "allow"  # for calls no rule matches: allow, or deny for allow-list deployments
    timeout: float = 300.0  # seconds a call waits for its approvers
    rules: tuple[ApprovalRule, ...] = ()
    remote: RemoteApprovalConfig | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    servers: Mapping[str, ServerConfig] = field(default_factory=dict)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    transcripts: TranscriptConfig = field(default_factory=TranscriptConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    identities: Mapping[str, IdentityConfig] = field(default_factory=dict)
    approvals: ApprovalConfig = field(default_factory=ApprovalConfig)

    def identity(self, name: str | None) -> IdentityConfig:
        """The named identity; without a name, the only one, or the only person's (device flow) among bots."""
        if name is None:
            people = [i for i in self.identities.values() if i.flow == "device"]
            if len(self.identities) == 1:
                return next(iter(self.identities.values()))
            if len(people) == 1:
                return people[0]
            if not self.identities:
                raise ConfigError("no identities in the config", hint="add one under 'identities:'")
            raise ConfigError(f"name an identity: {', '.join(sorted(self.identities))}")
        try:
            return self.identities[name]
        except KeyError:
            near = difflib.get_close_matches(name, list(self.identities), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known: {', '.join(sorted(self.identities)) or 'none'}"
            raise ConfigError(f"no identity named '{name}' in the config", hint=hint) from None

    def server(self, name: str) -> ServerConfig:
        try:
            return self.servers[name]
        except KeyError:
            where = f" in {self.path}" if self.path else " (no config file found)"
            near = difflib.get_close_matches(name, list(self.servers), n=1)
            hint = f"did you mean '{near[0]}'?" if near else (
                f"known servers: {', '.join(sorted(self.servers))}" if self.servers else
                "add it under 'servers:' or use --url / -- COMMAND")
            raise ConfigError(f"no server named '{name}'{where}", hint=hint) from None


# -- loading ---------------------------------------------------------------------------------------------


class _Node:
    """A YAML value with where it stood, so errors can point at it."""

    __slots__ = ("key_lines", "line", "value")

    def __init__(self, value: Any, line: int, key_lines: dict[str, int] | None = None) -> None:
        self.value = value
        self.line = line
        self.key_lines = key_lines or {}  # for a mapping: where each key stands


def _convert(node: yaml.Node, path: str = "", active: frozenset[int] = frozenset()) -> _Node:
    import yaml
    line = node.start_mark.line + 1
    if id(node) in active:
        raise _Problem(line, path or "(top)", "refers to itself through an alias")
    active = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[str, _Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{path}.{key}" if path else key
            if key in out:
                raise _Problem(key_node.start_mark.line + 1, dotted, "appears twice in the same mapping")
            out[key] = _convert(value_node, dotted, active)
            key_lines[key] = key_node.start_mark.line + 1
        return _Node(out, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_convert(n, f"{path}[{i}]", active) for i, n in enumerate(node.value)], line)
    assert isinstance(node, yaml.ScalarNode)
    loader = yaml.SafeLoader("")
    try:
        return _Node(loader.construct_object(node), line)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise _Problem(line, path or "(top)", f"cannot read this value ({problem})") from None
    finally:
        loader.dispose()


class _Problem(Exception):
    def __init__(self, line: int, key: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.line, self.key, self.message, self.hint = line, key, message, hint


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Reader:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def fail(self, node: _Node, key: str, message: str, hint: str | None = None) -> ConfigError:
        where = f"{self.path}:{node.line}" if self.path else f"line {node.line}"
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}", hint=hint)

    def mapping(self, node: _Node, key: str, allowed: tuple[str, ...] | None) -> dict[str, _Node]:
        if node.value is None:
            return {}
        if not isinstance(node.value, dict):
            raise self.fail(node, key, f"expected a mapping, got {_type(node.value)}")
        if allowed is not None:
            for name, child in node.value.items():
                if name not in allowed:
                    near = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
                    hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(allowed)}"
                    at = _Node(None, node.key_lines.get(name, child.line))
                    raise self.fail(at, f"{key}.{name}" if key else name, "unknown key", hint)
        mapping: dict[str, _Node] = node.value
        return mapping

    def string(self, node: _Node, key: str) -> str:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(node, key, f"expected a string, got {_type(value)}")
        return self.expand(node, key, str(value))

    def expand(self, node: _Node, key: str, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            var = m.group(1)
            if var not in os.environ:
                raise self.fail(node, key, f"environment variable {var} is not set", hint=f"export {var}=... or remove ${{{var}}}")
            return os.environ[var]
        return _ENV.sub(sub, text) if "${" in text else text

    def boolean(self, node: _Node, key: str) -> bool:
        if not isinstance(node.value, bool):
            raise self.fail(node, key, f"expected true or false, got {_type(node.value)}")
        return node.value

    def choice(self, node: _Node, key: str, choices: tuple[str, ...]) -> str:
        value = self.string(node, key)
        if value not in choices:
            near = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            hint = f"did you mean '{near[0]}'?" if near else f"one of: {', '.join(choices)}"
            raise self.fail(node, key, f"'{value}' is not valid", hint)
        return value

    def str_map(self, node: _Node, key: str) -> dict[str, str]:
        return {k: self.string(v, f"{key}.{k}") for k, v in self.mapping(node, key, None).items()}

    def duration(self, node: _Node, key: str) -> float:
        value = node.value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError:
                pass
        raise self.fail(node, key, f"expected a duration such as 100ms, 30s or 5m, got {value!r}")

    def count(self, node: _Node, key: str) -> int:
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise self.fail(node, key, f"expected a positive whole number, got {value!r}")

    def size(self, node: _Node, key: str) -> int:
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str):
            try:
                return parse_size(value)
            except ValueError:
                pass
        raise self.fail(node, key, f"expected a size such as 32MiB or 1048576, got {value!r}")


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing", bool: "a boolean"}.get(type(value), type(value).__name__)


_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise ValueError(text)
    n = int(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    if n <= 0:
        raise ValueError(text)
    return n


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in "100ms", "30s", "5m", "1h" or a bare number of seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(text)
    seconds = float(m.group(1)) * _SECONDS[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(text)
    return seconds


_SERVER_KEYS = ("url", "command", "args", "transport", "headers", "env", "cwd", "identity", "grant")


def _server(r: _Reader, name: str, node: _Node) -> ServerConfig:
    key = f"servers.{name}"
    m = r.mapping(node, key, _SERVER_KEYS)
    if node.value is None or not m:
        raise r.fail(node, key, "empty server entry", hint="give it a 'url:' or a 'command:'")
    url = r.string(m["url"], f"{key}.url") if "url" in m else None
    command: list[str] = []
    if "command" in m:
        c = m["command"]
        if isinstance(c.value, list):
            command = [r.string(item, f"{key}.command") for item in c.value]
        else:
            command = shlex.split(r.string(c, f"{key}.command"))
        if not command:
            raise r.fail(c, f"{key}.command", "empty command")
    if "args" in m:
        if not isinstance(m["args"].value, list):
            raise r.fail(m["args"], f"{key}.args", "expected a list of strings")
        if not command:
            raise r.fail(m["args"], f"{key}.args", "'args' needs a 'command'")
        command += [r.string(item, f"{key}.args") for item in m["args"].value]
    if url and command:
        raise r.fail(node, key, "has both 'url' and 'command'", hint="a server is either remote (url) or local (command)")
    if not url and not command:
        raise r.fail(node, key, "has neither 'url' nor 'command'")
    transport = r.choice(m["transport"], f"{key}.transport", TRANSPORTS) if "transport" in m else ("stdio" if command else "auto")
    if command and transport != "stdio":
        raise r.fail(m["transport"], f"{key}.transport", f"'{transport}' needs a 'url'", hint="a 'command' server speaks stdio")
    if url and transport == "stdio":
        raise r.fail(m["transport"], f"{key}.transport", "'stdio' needs a 'command'")
    if url and not url.startswith(("http://", "https://")):
        raise r.fail(m["url"], f"{key}.url", f"'{url}' is not an http(s) URL")
    identity = r.string(m["identity"], f"{key}.identity") if "identity" in m else None
    grant = _grant(r, m["grant"], f"{key}.grant") if "grant" in m else None
    if grant is not None and identity is None:
        raise r.fail(m["grant"], f"{key}.grant", "a grant needs an 'identity' to get it with")
    if identity is not None and not url:
        raise r.fail(m["identity"], f"{key}.identity", "an identity is for a server with a 'url'",
                     hint="a local command server gets its credentials from its own environment")
    return ServerConfig(
        name=name, url=url, command=tuple(command), transport=transport,
        headers=r.str_map(m["headers"], f"{key}.headers") if "headers" in m else {},
        env=r.str_map(m["env"], f"{key}.env") if "env" in m else {},
        cwd=r.string(m["cwd"], f"{key}.cwd") if "cwd" in m else None,
        identity=identity, grant=grant if grant is not None or identity is None else GrantConfig(),
    )


def _grant(r: _Reader, node: _Node, key: str) -> GrantConfig:
    g = r.mapping(node, key, ("mode", "resource", "audience", "scope", "lifetime"))
    return GrantConfig(
        mode=r.choice(g["mode"], f"{key}.mode", GRANT_MODES) if "mode" in g else "exchange",
        resource=r.string(g["resource"], f"{key}.resource") if "resource" in g else None,
        audience=r.string(g["audience"], f"{key}.audience") if "audience" in g else None,
        scope=r.string(g["scope"], f"{key}.scope") if "scope" in g else None,
        lifetime=r.duration(g["lifetime"], f"{key}.lifetime") if "lifetime" in g else None,
    )


_IDENTITY_KEYS = ("issuer", "client_id", "flow", "scopes", "client_secret_env", "client_secret_store",
                  "private_key_file", "key_id", "token_file", "token_env", "store")


def _identity(r: _Reader, name: str, node: _Node) -> IdentityConfig:
    key = f"identities.{name}"
    m = r.mapping(node, key, _IDENTITY_KEYS)
    if "client_id" not in m:
        raise r.fail(node, key, "needs 'client_id'")
    issuer = r.string(m["issuer"], f"{key}.issuer").rstrip("/") if "issuer" in m else ""
    if issuer and not issuer.startswith(("https://", "http://")):
        raise r.fail(m["issuer"], f"{key}.issuer", f"'{issuer}' is not an http(s) URL")
    flow = r.choice(m["flow"], f"{key}.flow", FLOWS) if "flow" in m else "device"
    scopes: tuple[str, ...] = IdentityConfig.scopes
    if "scopes" in m:
        if not isinstance(m["scopes"].value, list):
            raise r.fail(m["scopes"], f"{key}.scopes", "expected a list of scopes")
        scopes = tuple(r.string(s, f"{key}.scopes") for s in m["scopes"].value)
    ident = IdentityConfig(
        name=name, issuer=issuer, client_id=r.string(m["client_id"], f"{key}.client_id"), flow=flow, scopes=scopes,
        client_secret_env=r.string(m["client_secret_env"], f"{key}.client_secret_env") if "client_secret_env" in m else None,
        client_secret_store=(r.choice(m["client_secret_store"], f"{key}.client_secret_store", ("keyring",))
                             if "client_secret_store" in m else None),
        private_key_file=(Path(r.string(m["private_key_file"], f"{key}.private_key_file")).expanduser()
                          if "private_key_file" in m else None),
        key_id=r.string(m["key_id"], f"{key}.key_id") if "key_id" in m else None,
        token_file=Path(r.string(m["token_file"], f"{key}.token_file")).expanduser() if "token_file" in m else None,
        token_env=r.string(m["token_env"], f"{key}.token_env") if "token_env" in m else None,
        store=r.choice(m["store"], f"{key}.store", KEY_STORES) if "store" in m else "keyring",
    )
    if flow == "client_credentials" and not (ident.client_secret_env or ident.client_secret_store
                                             or ident.private_key_file):
        raise r.fail(node, key, "flow client_credentials needs 'client_secret_env', 'client_secret_store: keyring' "
                                "or 'private_key_file'")
    if flow == "token" and not (ident.token_file or ident.token_env):
        raise r.fail(node, key, "flow token needs 'token_file' or 'token_env' (the workload identity token)")
    return ident


_TOP_KEYS = ("servers", "relay", "transcripts", "masking", "collector", "identities", "approvals")
_TRANSCRIPT_KEYS = ("enabled", "dir", "fsync", "fsync_interval", "key_store", "key_file", "unsafe_continue_on_error")


def _transcripts(r: _Reader, node: _Node) -> TranscriptConfig:
    t = r.mapping(node, "transcripts", _TRANSCRIPT_KEYS)
    d = TranscriptConfig()
    return TranscriptConfig(
        enabled=r.boolean(t["enabled"], "transcripts.enabled") if "enabled" in t else d.enabled,
        dir=Path(r.string(t["dir"], "transcripts.dir")).expanduser() if "dir" in t else None,
        fsync=r.choice(t["fsync"], "transcripts.fsync", FSYNC_POLICIES) if "fsync" in t else d.fsync,
        fsync_interval=(r.duration(t["fsync_interval"], "transcripts.fsync_interval")
                        if "fsync_interval" in t else d.fsync_interval),
        key_store=r.choice(t["key_store"], "transcripts.key_store", KEY_STORES) if "key_store" in t else d.key_store,
        key_file=Path(r.string(t["key_file"], "transcripts.key_file")).expanduser() if "key_file" in t else None,
        unsafe_continue_on_error=(r.boolean(t["unsafe_continue_on_error"], "transcripts.unsafe_continue_on_error")
                                  if "unsafe_continue_on_error" in t else False),
    )


def _collector(r: _Reader, node: _Node) -> CollectorConfig:
    if not node.value:
        return CollectorConfig()
    c = r.mapping(node, "collector", ("url", "auth", "batch_size", "interval", "required", "max_lag"))
    d = CollectorConfig()
    if "url" not in c:
        raise r.fail(node, "collector", "needs a 'url'", hint="or remove the section to keep transcripts local")
    url = r.string(c["url"], "collector.url")
    if not url.startswith(("http://", "https://")):
        raise r.fail(c["url"], "collector.url", f"'{url}' is not an http(s) URL")
    bearer_env = None
    if "auth" in c:
        auth = r.mapping(c["auth"], "collector.auth", ("bearer_env",))
        if "bearer_env" in auth:
            bearer_env = r.string(auth["bearer_env"], "collector.auth.bearer_env")
    return CollectorConfig(
        url=url.rstrip("/"), bearer_env=bearer_env,
        batch_size=r.count(c["batch_size"], "collector.batch_size") if "batch_size" in c else d.batch_size,
        interval=r.duration(c["interval"], "collector.interval") if "interval" in c else d.interval,
        required=r.boolean(c["required"], "collector.required") if "required" in c else d.required,
        max_lag=r.duration(c["max_lag"], "collector.max_lag") if "max_lag" in c else d.max_lag,
    )


def _masking(r: _Reader, node: _Node) -> MaskingConfig:
    m = r.mapping(node, "masking", ("unsafe_disable", "pan", "client_requests", "rules"))
    rules: list[MaskingRule] = []
    if "rules" in m:
        if not isinstance(m["rules"].value, list):
            raise r.fail(m["rules"], "masking.rules", "expected a list of rules")
        for i, item in enumerate(m["rules"].value):
            key = f"masking.rules[{i}]"
            rule = r.mapping(item, key, ("name", "pattern", "replace", "keys"))
            if "name" not in rule:
                raise r.fail(item, key, "a rule needs a 'name' (it names the rule in transcripts)")
            pattern = r.string(rule["pattern"], f"{key}.pattern") if "pattern" in rule else None
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise r.fail(rule["pattern"], f"{key}.pattern", f"not a valid regular expression: {exc}") from None
            keys: list[str] = []
            if "keys" in rule:
                if not isinstance(rule["keys"].value, list):
                    raise r.fail(rule["keys"], f"{key}.keys", "expected a list of key names")
                keys = [r.string(k, f"{key}.keys") for k in rule["keys"].value]
            if pattern is None and not keys:
                raise r.fail(item, key, "a rule needs a 'pattern' or 'keys'")
            name = r.string(rule["name"], f"{key}.name")
            replace = r.string(rule["replace"], f"{key}.replace") if "replace" in rule else f"[{name.upper()} REDACTED]"
            rules.append(MaskingRule(name=name, replace=replace, pattern=pattern, keys=tuple(keys)))
    return MaskingConfig(
        enabled=not (r.boolean(m["unsafe_disable"], "masking.unsafe_disable") if "unsafe_disable" in m else False),
        pan=r.choice(m["pan"], "masking.pan", PAN_MODES) if "pan" in m else "last4",
        client_requests=(r.choice(m["client_requests"], "masking.client_requests", CLIENT_MODES)
                         if "client_requests" in m else "pass"),
        rules=tuple(rules),
    )


_APPROVAL_KEYS = ("default", "timeout", "rules", "remote")
_RULE_KEYS = ("match", "action", "reason", "channels", "approvers", "timeout")
_MATCH_KEYS = ("server", "tool", "annotations", "args", "identity", "groups")
# RFC 6901: "" (the whole arguments object) or /token/token..., where "~" is only ever "~0" or "~1".
_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)*")


def _approvals(r: _Reader, node: _Node, identities: Mapping[str, IdentityConfig]) -> ApprovalConfig:
    a = r.mapping(node, "approvals", _APPROVAL_KEYS)
    d = ApprovalConfig()
    items: list[_Node] = []
    if "rules" in a and a["rules"].value is not None:
        if not isinstance(a["rules"].value, list):
            raise r.fail(a["rules"], "approvals.rules", "expected a list of rules")
        items = a["rules"].value
    rules = [_approval_rule(r, i, item) for i, item in enumerate(items)]
    remote = _remote(r, a["remote"], identities) if "remote" in a and a["remote"].value is not None else None
    for rule, item in zip(rules, items, strict=True):
        # Only remotely, with no service to ask: a call this rule matches could never go through.
        if remote is None and rule.channels == ("remote",):
            key = f"approvals.rules[{rule.index}].channels"
            raise r.fail(r.mapping(item, key, None)["channels"], key, "channel 'remote' needs 'approvals.remote'",
                         hint="name the approval service: approvals.remote: {url: ..., identity: ...}")
    return ApprovalConfig(
        default=r.choice(a["default"], "approvals.default", APPROVAL_DEFAULTS) if "default" in a else d.default,
        timeout=r.duration(a["timeout"], "approvals.timeout") if "timeout" in a else d.timeout,
        rules=tuple(rules), remote=remote,
    )


def _remote(r: _Reader, node: _Node, identities: Mapping[str, IdentityConfig]) -> RemoteApprovalConfig:
    m = r.mapping(node, "approvals.remote", ("url", "identity", "grant"))
    if "url" not in m:
        raise r.fail(node, "approvals.remote", "needs a 'url' (the approval service)",
                     hint="see docs/approval-protocol.md")
    url = r.string(m["url"], "approvals.remote.url")
    if not url.startswith(("http://", "https://")):
        raise r.fail(m["url"], "approvals.remote.url", f"'{url}' is not an http(s) URL")
    identity = r.string(m["identity"], "approvals.remote.identity") if "identity" in m else None
    if identity is not None:
        if identity not in identities:
            near = difflib.get_close_matches(identity, list(identities), n=1)
            raise r.fail(m["identity"], "approvals.remote.identity", f"no identity named '{identity}'",
                         f"did you mean '{near[0]}'?" if near else "define it under 'identities:'")
        if not identities[identity].issuer:
            raise r.fail(m["identity"], "approvals.remote.identity", f"identity '{identity}' names no 'issuer'",
                         hint=f"give identities.{identity}.issuer: the approval service has no metadata to find it")
    grant = _grant(r, m["grant"], "approvals.remote.grant") if "grant" in m else None
    if grant is not None and identity is None:
        raise r.fail(m["grant"], "approvals.remote.grant", "a grant needs an 'identity' to get it with")
    return RemoteApprovalConfig(url=url.rstrip("/"), identity=identity, grant=grant)


def _approval_rule(r: _Reader, index: int, node: _Node) -> ApprovalRule:
    key = f"approvals.rules[{index}]"
    rule = r.mapping(node, key, _RULE_KEYS)
    if "action" not in rule:
        raise r.fail(node, key, "a rule needs an 'action'", hint=f"one of: {', '.join(APPROVAL_ACTIONS)}")
    action = r.choice(rule["action"], f"{key}.action", APPROVAL_ACTIONS)
    for only in ("channels", "approvers", "timeout"):
        if only in rule and action != "require_approval":
            raise r.fail(rule[only], f"{key}.{only}", f"is only for action require_approval, not {action}")
    if "reason" in rule and action == "allow":
        raise r.fail(rule["reason"], f"{key}.reason", "is for deny and require_approval, not allow",
                     hint="a call that is allowed goes through without a message")
    m = r.mapping(rule["match"], f"{key}.match", _MATCH_KEYS) if "match" in rule else {}
    channels: tuple[str, ...] = ("local",)
    if "channels" in rule:
        channels = tuple(r.choice(c, f"{key}.channels", APPROVAL_CHANNELS)
                         for c in _items(r, rule["channels"], f"{key}.channels", "channel names"))
        if len(set(channels)) != len(channels):
            raise r.fail(rule["channels"], f"{key}.channels", "names a channel twice")
    return ApprovalRule(
        index=index, line=node.line,
        server=_glob(r, m["server"], f"{key}.match.server") if "server" in m else None,
        tool=_glob(r, m["tool"], f"{key}.match.tool") if "tool" in m else None,
        annotations=_annotations(r, m["annotations"], f"{key}.match.annotations") if "annotations" in m else {},
        args=_arg_predicates(r, m["args"], f"{key}.match.args") if "args" in m else {},
        identity=_glob(r, m["identity"], f"{key}.match.identity") if "identity" in m else None,
        groups=(tuple(r.string(g, f"{key}.match.groups") for g in _items(r, m["groups"], f"{key}.match.groups",
                                                                          "group names"))
                if "groups" in m else ()),
        action=action,
        reason=r.string(rule["reason"], f"{key}.reason") if "reason" in rule else None,
        channels=channels if action == "require_approval" else (),
        approvers=r.count(rule["approvers"], f"{key}.approvers") if "approvers" in rule else 1,
        timeout=r.duration(rule["timeout"], f"{key}.timeout") if "timeout" in rule else None,
    )


def _items(r: _Reader, node: _Node, key: str, what: str) -> list[_Node]:
    """A non-empty list, or one scalar standing for a list of one."""
    items = node.value if isinstance(node.value, list) else [node]
    if not items or node.value is None:
        raise r.fail(node, key, f"expected a list of {what}, got nothing")
    return items


def _glob(r: _Reader, node: _Node, key: str) -> str:
    pattern = r.string(node, key)
    if not pattern:
        raise r.fail(node, key, "an empty pattern matches nothing", hint="use '*' for any, or leave the key out")
    return pattern


def _annotations(r: _Reader, node: _Node, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in r.mapping(node, key, TOOL_ANNOTATIONS).items():
        out[name] = r.string(value, f"{key}.{name}") if name == "title" else r.boolean(value, f"{key}.{name}")
    return out


def _arg_predicates(r: _Reader, node: _Node, key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pointer, pred_node in r.mapping(node, key, None).items():
        where = f'{key}["{pointer}"]'
        if not _POINTER.fullmatch(pointer):
            key_at = _Node(None, node.key_lines.get(pointer, pred_node.line))
            raise r.fail(key_at, where, "not a JSON pointer",
                         hint="write /name/0/field (RFC 6901: '~1' for '/' and '~0' for '~' in a name)")
        ops = r.mapping(pred_node, where, ARG_OPS)
        if not ops:
            raise r.fail(pred_node, where, "needs a test", hint=f"one or more of: {', '.join(ARG_OPS)}")
        pred: dict[str, Any] = {}
        for op, value in ops.items():
            at = f"{where}.{op}"
            if op == "eq":
                pred[op] = _json_value(r, value, at)
            elif op == "in":
                if not isinstance(value.value, list):
                    raise r.fail(value, at, f"expected a list of values, got {_type(value.value)}")
                pred[op] = [_json_value(r, v, at) for v in value.value]
            elif op in ("gt", "lt"):
                if isinstance(value.value, bool) or not isinstance(value.value, (int, float)):
                    raise r.fail(value, at, f"expected a number, got {_type(value.value)}")
                pred[op] = value.value
            elif op == "regex":
                pattern = r.string(value, at)
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise r.fail(value, at, f"not a valid regular expression: {exc}") from None
                pred[op] = pattern
            else:
                pred[op] = r.boolean(value, at)
        out[pointer] = pred
    return out


def _json_value(r: _Reader, node: _Node, key: str) -> Any:
    """The plain JSON value of a node: what a tool call's arguments can hold (YAML dates and the like cannot)."""
    value = node.value
    if isinstance(value, dict):
        return {k: _json_value(r, v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(r, v, key) for v in value]
    if isinstance(value, str):
        return r.expand(node, key, value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise r.fail(node, key, f"expected a JSON value (string, number, true/false, null, list or mapping), "
                            f"got {_type(value)}", hint="quote it to compare with a string")


def _build(r: _Reader, root: _Node) -> Config:
    top = r.mapping(root, "", _TOP_KEYS)
    servers = {}
    if "servers" in top:
        for name, node in r.mapping(top["servers"], "servers", None).items():
            servers[name] = _server(r, name, node)
    max_bytes = DEFAULT_MAX_MESSAGE_BYTES
    if "relay" in top:
        opts = r.mapping(top["relay"], "relay", ("max_message_bytes",))
        if "max_message_bytes" in opts:
            max_bytes = r.size(opts["max_message_bytes"], "relay.max_message_bytes")
    identities = {}
    if "identities" in top and top["identities"].value:
        for name, node in r.mapping(top["identities"], "identities", None).items():
            identities[name] = _identity(r, name, node)
    for name, ident in identities.items():
        if not ident.issuer and not any(s.identity == name for s in servers.values()):
            raise r.fail(top["identities"], f"identities.{name}", "needs 'issuer'",
                         "or a server that uses it and names its authorization server (RFC 9728)")
    for name, server in servers.items():
        if server.identity is not None and server.identity not in identities:
            near = difflib.get_close_matches(server.identity, list(identities), n=1)
            node = r.mapping(r.mapping(top["servers"], "servers", None)[name], f"servers.{name}", None)["identity"]
            raise r.fail(node, f"servers.{name}.identity", f"no identity named '{server.identity}'",
                         f"did you mean '{near[0]}'?" if near else "define it under 'identities:'")
    transcripts = _transcripts(r, top["transcripts"]) if "transcripts" in top else TranscriptConfig()
    collector = _collector(r, top["collector"]) if "collector" in top else CollectorConfig()
    masking = _masking(r, top["masking"]) if "masking" in top else MaskingConfig()
    approvals = _approvals(r, top["approvals"], identities) if "approvals" in top else ApprovalConfig()
    return Config(path=r.path, servers=servers, max_message_bytes=max_bytes, transcripts=transcripts,
                  masking=masking, collector=collector, identities=identities, approvals=approvals)


def parse(text: str, path: Path | None = None) -> Config:
    import yaml  # here, not at the top: a relay without a config file starts without it

    r = _Reader(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 0
        where = f"{path}:{line}" if path else f"line {line}"
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError), which has no mark
        raise ConfigError(f"{path or 'config'}: not valid YAML: {exc}") from None
    if node is None:
        return Config(path=path)
    try:
        return _build(r, _convert(node))
    except _Problem as p:
        where = f"{path}:{p.line}" if path else f"line {p.line}"
        raise ConfigError(f"{where}: {p.key}: {p.message}", hint=p.hint) from None


def config_path(explicit: str | None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (a named file must exist)."""
    if explicit:
        return Path(explicit).expanduser(), True
    env = os.environ.get("RELAY_CONFIG")
    if env:
        return Path(env).expanduser(), True
    return paths.default_config_path(), False


def load(explicit: str | None = None) -> Config:
    path, named = config_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named:
            raise ConfigError(f"config file {path} does not exist") from None
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return parse(text, path)

