"""What the app callback and `main` hand to the commands (set once per invocation)."""

from __future__ import annotations

config_path: str | None = None
command: list[str] = []
