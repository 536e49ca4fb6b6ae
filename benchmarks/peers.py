"""The bridges under test, how to install them, and how to invoke them.

Each bridge turns stdio into Streamable HTTP to one upstream URL:

* ``relay``: ``relay run --url URL --transcript-dir DIR`` (the console script
  next to ``sys.executable`` when installed, else ``python -m relay`` run from
  the repository root);
* ``mcp-remote`` (npm, pinned in ``benchmarks/node/package-lock.json``):
  ``node .../mcp-remote/dist/proxy.js URL --transport http-only --allow-http
  --silent``.  ``http-only`` skips the SSE fallback, ``--allow-http`` permits
  plain ``http://`` (loopback is allowed anyway), ``--silent`` turns its
  stderr logging off; no OAuth flow starts because the upstream never answers
  401.  Its state directory is pointed at a temporary folder through
  ``MCP_REMOTE_CONFIG_DIR`` so ``~/.mcp-auth`` is left alone.  ``node`` runs
  the script directly, as ``npx`` would after its own start-up;
* ``mcp-proxy`` (PyPI, pinned in ``benchmarks/peers-requirements.txt``, in its
  own venv ``benchmarks/.venv-peers`` because it needs an older ``mcp``):
  ``mcp-proxy --transport streamablehttp --log-level WARNING URL``.  Without
  ``--transport`` it would speak the old SSE transport; ``WARNING`` keeps it
  from logging every HTTP request.

:func:`setup` installs the peers on first use (``npm ci``, ``venv`` +
``pip install``) and does nothing when the installed copies match the pinned
files (a hash of each lock file is stamped next to the install).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = BENCH_DIR.parent
NODE_DIR: Final = BENCH_DIR / "node"
PEERS_VENV: Final = BENCH_DIR / ".venv-peers"
PEERS_REQUIREMENTS: Final = BENCH_DIR / "peers-requirements.txt"


class SetupError(RuntimeError):
    """A peer could not be installed."""


@dataclass(frozen=True)
class Invocation:
    """A ready-to-spawn bridge command."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Bridge:
    """A bridge under test: how to install it and how to invoke it for a URL."""

    name: str
    invoke: Callable[[str, Path], Invocation]  # (upstream URL, scratch dir) -> invocation
    install: Callable[[], None] | None = None
    is_peer: bool = True


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(command: list[str], cwd: Path | None = None) -> None:
    print(f"[setup] {' '.join(command)}", file=sys.stderr, flush=True)
    completed = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if completed.returncode != 0:
        raise SetupError(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stdout[-3000:]}")


# --------------------------------------------------------------------------- mcp-remote (npm)


def install_mcp_remote() -> None:
    """Run ``npm ci`` in ``benchmarks/node`` unless the lock file is already installed."""
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".relay-bench-lock.sha256"
    digest = _sha256(lock)
    if stamp.exists() and stamp.read_text().strip() == digest and _mcp_remote_script().exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("npm is not on PATH; install Node.js to benchmark mcp-remote")
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR)
    stamp.write_text(digest + "\n")


def _mcp_remote_script() -> Path:
    package_dir = NODE_DIR / "node_modules" / "mcp-remote"
    try:
        manifest = json.loads((package_dir / "package.json").read_text())
    except OSError:
        return package_dir / "dist" / "proxy.js"
    return package_dir / str(manifest["bin"]["mcp-remote"])


def invoke_mcp_remote(url: str, scratch: Path) -> Invocation:
    node = shutil.which("node") or "node"
    config_dir = scratch / "mcp-auth"
    config_dir.mkdir(parents=True, exist_ok=True)
    return Invocation(
        command=[
            node,
            str(_mcp_remote_script()),
            url,
            "--transport",
            "http-only",
            "--allow-http",
            "--silent",
        ],
        env={"MCP_REMOTE_CONFIG_DIR": str(config_dir)},
    )


# --------------------------------------------------------------------------- mcp-proxy (PyPI)


def _venv_bin(name: str) -> Path:
    return PEERS_VENV / "bin" / name


def install_mcp_proxy() -> None:
    """Create ``benchmarks/.venv-peers`` and install the pinned requirements unless done already."""
    stamp = PEERS_VENV / ".relay-bench-requirements.sha256"
    digest = _sha256(PEERS_REQUIREMENTS)
    if stamp.exists() and stamp.read_text().strip() == digest and _venv_bin("mcp-proxy").exists():
        return
    if not _venv_bin("python").exists():
        _run([sys.executable, "-m", "venv", str(PEERS_VENV)])
    _run([str(_venv_bin("python")), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-r", str(PEERS_REQUIREMENTS)])  # fmt: skip
    stamp.write_text(digest + "\n")


def invoke_mcp_proxy(url: str, scratch: Path) -> Invocation:
    return Invocation(
        command=[str(_venv_bin("mcp-proxy")), "--transport", "streamablehttp", "--log-level", "WARNING", url]
    )


# --------------------------------------------------------------------------- relay


def relay_base_command() -> tuple[list[str], Path | None]:
    """The relay console script next to ``sys.executable``, else ``python -m relay`` from the repo root."""
    script = Path(sys.executable).parent / "relay"
    if script.exists() and os.access(script, os.X_OK):
        return [str(script)], None
    return [sys.executable, "-m", "relay"], REPO_ROOT


def _relay_env(scratch: Path) -> dict[str, str]:
    # The host signing key goes to relay's opt-in 0600 file store inside the scratch folder: benchmark machines
    # (this one included) have no OS keyring service, and the user's real key is left alone.
    return {"XDG_STATE_HOME": str(scratch / "state"), "RELAY_KEY_STORE": "file"}


def invoke_relay(url: str, scratch: Path) -> Invocation:
    base, cwd = relay_base_command()
    transcripts = scratch / "transcripts"
    transcripts.mkdir(parents=True, exist_ok=True)
    return Invocation(command=[*base, "run", "--url", url, "--transcript-dir", str(transcripts)],
                      env=_relay_env(scratch), cwd=cwd)


def invoke_relay_without_transcripts(url: str, scratch: Path) -> Invocation:
    """relay with `transcripts.enabled: false`: the baseline for what signed transcripts cost."""
    base, cwd = relay_base_command()
    config = scratch / "no-transcripts.yaml"
    config.write_text("transcripts:\n  enabled: false\n")
    return Invocation(command=[*base, "--config", str(config), "run", "--url", url],
                      env=_relay_env(scratch), cwd=cwd)


BRIDGES: Final[dict[str, Bridge]] = {
    "relay": Bridge("relay", invoke_relay, is_peer=False),
    "relay-no-transcripts": Bridge("relay-no-transcripts", invoke_relay_without_transcripts, is_peer=False),
    "mcp-remote": Bridge("mcp-remote", invoke_mcp_remote, install_mcp_remote),
    "mcp-proxy": Bridge("mcp-proxy", invoke_mcp_proxy, install_mcp_proxy),
}


def setup(names: list[str] | None = None) -> dict[str, str]:
    """Install the named peers (all by default); return ``{name: error}`` for those that failed."""
    failures: dict[str, str] = {}
    for name in names if names is not None else list(BRIDGES):
        bridge = BRIDGES[name]
        if bridge.install is None:
            continue
        try:
            bridge.install()
        except (SetupError, OSError) as exc:
            failures[name] = str(exc)
    return failures


if __name__ == "__main__":
    problems = setup()
    for peer, error in problems.items():
        print(f"{peer}: {error}", file=sys.stderr)
    sys.exit(1 if problems else 0)
