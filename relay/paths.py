"""Where relay keeps things: every path derives from the XDG variables, so tests isolate by setting them."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_home() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "relay"


def state_home() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "relay"


def default_config_path() -> Path:
    return config_home() / "config.yaml"


def default_transcript_dir() -> Path:
    return state_home() / "transcripts"


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) with mode 0700 and make sure the leaf really is 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def runtime_dir() -> Path:
    """Per-user runtime files (sockets): $XDG_RUNTIME_DIR/relay, else a 0700 folder of this user's in /tmp."""
    value = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(value) if value and os.path.isabs(value) else Path("/tmp") / f"relay-{os.getuid()}"
    return base / "relay" if value and os.path.isabs(value) else base
