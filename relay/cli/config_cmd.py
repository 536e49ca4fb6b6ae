"""`relay config check`: validate the configuration and say exactly what is wrong where."""

from __future__ import annotations

from typing import Annotated

import typer

from relay import config as config_mod
from relay.cli import state
from relay.cli.common import fail
from relay.console import console
from relay.errors import ConfigError

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@config_app.command("check")
def check(
    path: Annotated[str | None, typer.Argument(metavar="[PATH]", help="File to check \\[default: the active config].")] = None,
) -> None:
    """Validate the config file; exit 0 when valid, 2 with file:line: key: problem when not."""
    chosen, _ = config_mod.config_path(path or state.config_path)
    try:
        cfg = config_mod.load(str(chosen))
    except ConfigError as err:
        raise fail(err) from None
    names = ", ".join(sorted(cfg.servers)) or "none"
    console().print(f"OK: {chosen}: {len(cfg.servers)} server(s): {names}", highlight=False, markup=False)


@config_app.command("path")
def show_path() -> None:
    """Print which config file relay reads (stderr)."""
    chosen, _ = config_mod.config_path(state.config_path)
    note = "" if chosen.exists() else " (does not exist)"
    console().print(f"{chosen}{note}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
