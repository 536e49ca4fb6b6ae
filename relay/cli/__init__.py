"""The command line: a typer app whose commands parse options, build objects and call the library."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from relay import __version__
from relay.cli import state
from relay.console import LEVELS, setup_logging

app = typer.Typer(
    name="relay",
    help="A PCI DSS guardrail between AI assistants and MCP servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"relay {__version__}", err=True)
        raise typer.Exit()


@app.callback()
def _global(
    config: Annotated[str | None, typer.Option("--config", "-c", envvar="RELAY_CONFIG", metavar="PATH",
                                               help="Config file \\[default: $XDG_CONFIG_HOME/relay/config.yaml].")] = None,
    log_level: Annotated[str, typer.Option("--log-level", envvar="RELAY_LOG_LEVEL", metavar="LEVEL",
                                           help="debug, info, warning or error.")] = "warning",
    log_format: Annotated[str, typer.Option("--log-format", envvar="RELAY_LOG_FORMAT", metavar="FORMAT",
                                            help="text or json (logs always go to stderr).")] = "text",
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    if log_level.lower() not in LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LEVELS)}", param_hint="--log-level")
    if log_format not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--log-format")
    setup_logging(log_level.lower(), log_format)
    state.config_path = config


def _register() -> None:
    from relay.cli import (
        approvals_cmd,
        completions,
        config_cmd,
        demo,
        keys_cmd,
        login_cmd,
        policy_cmd,
        run,
        transcripts_cmd,
        verify_cmd,
    )

    run.register(app)
    demo.register(app)
    login_cmd.register(app)
    approvals_cmd.register(app)
    verify_cmd.register(app)
    keys_cmd.register(app)
    transcripts_cmd.register(app)
    config_cmd.register(app)
    policy_cmd.register(app)
    completions.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # `relay run -- CMD ARGS`: everything after `--` is the server's command line, untouched by option parsing.
    if "--" in args:
        i = args.index("--")
        state.command = args[i + 1:]
        args = args[:i]
    else:
        state.command = []
    app(args=args, prog_name="relay")
