"""`relay demo`: the main job on an embedded sample server; no server, account or network needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relay.cli.common import run_async


def demo(
    transcript_dir: Annotated[Path | None, typer.Option(
        "--transcript-dir", metavar="DIR", help="Where the demo's transcript goes \\[default: a demo folder under $XDG_STATE_HOME/relay].")] = None,
) -> None:
    """Run a scripted session against the embedded sample payments server and show what the agent saw."""
    from relay.demo.run import run_demo

    run_async(lambda: run_demo(transcript_dir))


def register(app: typer.Typer) -> None:
    app.command()(demo)
