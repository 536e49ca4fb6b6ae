"""`relay run` (a relay session for an MCP client) and `relay call` (one tool call, for bots and scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relay import config as config_mod
from relay.cli import state
from relay.cli.common import fail, run_async
from relay.config import TRANSPORTS, parse_size
from relay.errors import CallFailed, RelayError, UsageError
from relay.runner import Target, resolve_server

TransportOpt = Annotated[str | None, typer.Option(
    "--transport", "-t", metavar="KIND", help="auto, streamable-http, sse or stdio \\[default: auto, or the config's].")]
UrlOpt = Annotated[str | None, typer.Option("--url", "-u", metavar="URL", help="An ad hoc remote MCP server.")]
HeaderOpt = Annotated[list[str] | None, typer.Option(
    "--header", "-H", metavar="'NAME: VALUE'", help="Extra HTTP header for the server (repeatable).")]
TranscriptDirOpt = Annotated[Path | None, typer.Option(
    "--transcript-dir", metavar="DIR", envvar="RELAY_TRANSCRIPT_DIR",
    help="Where session transcripts go \\[default: $XDG_STATE_HOME/relay/transcripts].")]
MaxBytesOpt = Annotated[str | None, typer.Option(
    "--max-message-bytes", metavar="SIZE", help="Largest message relayed, e.g. 32MiB \\[default: config or 32MiB].")]


def _headers(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header wants 'Name: value', got '{value.split(':')[0]}...'")
        out[name.strip()] = rest.strip()
    return out


def _target(server: str | None, url: str | None, transport: str | None, header: list[str] | None,
            transcript_dir: Path | None, max_message_bytes: str | None) -> Target:
    if transport is not None and transport not in TRANSPORTS:
        raise UsageError(f"--transport must be one of {', '.join(TRANSPORTS)}")
    cfg = config_mod.load(state.config_path)
    resolved = resolve_server(cfg, server, url, state.command, transport, _headers(header))
    limit = cfg.max_message_bytes
    if max_message_bytes is not None:
        try:
            limit = parse_size(max_message_bytes)
        except ValueError:
            raise UsageError(f"--max-message-bytes: '{max_message_bytes}' is not a size such as 32MiB") from None
    directory: Path | None = None
    if cfg.transcripts.enabled:
        directory = transcript_dir or cfg.transcripts.directory
    identity = cfg.identity(resolved.identity) if resolved.identity else None
    remote = cfg.approvals.remote
    return Target(server=resolved, transcript_dir=directory, max_message_bytes=limit, masking=cfg.masking,
                  transcripts=cfg.transcripts, collector=cfg.collector, identity=identity, approvals=cfg.approvals,
                  approval_identity=cfg.identity(remote.identity) if remote and remote.identity else None)


def run(
    server: Annotated[str | None, typer.Argument(metavar="[SERVER]", help="A server named in the config.")] = None,
    *,
    url: UrlOpt = None,
    transport: TransportOpt = None,
    header: HeaderOpt = None,
    listen: Annotated[str | None, typer.Option(
        "--listen", metavar="HOST:PORT", help="Serve local clients over Streamable HTTP instead of stdio.")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        "--allow-origin", metavar="ORIGIN", help="With --listen: an extra allowed Origin (repeatable).")] = None,
    listen_token_env: Annotated[str | None, typer.Option(
        "--listen-token-env", metavar="VAR", help="With --listen: require 'Authorization: Bearer <$VAR>'.")] = None,
    transcript_dir: TranscriptDirOpt = None,
    max_message_bytes: MaxBytesOpt = None,
) -> None:
    """Relay an MCP session: stdio (or --listen) on the client side, the server upstream.

    The server is a name from the config, --url URL, or a command after `--`:

      relay run payments

      relay run --url https://mcp.example.com/mcp

      relay run -- npx -y @modelcontextprotocol/server-everything stdio
    """
    try:
        target = _target(server, url, transport, header, transcript_dir, max_message_bytes)
        if listen is not None:
            from relay.runner import serve_listen
            from relay.transports.listen import ListenOptions

            options = ListenOptions.parse(listen, allow_origin or [], listen_token_env)
            run_async(lambda: serve_listen(target, options))
            return
    except RelayError as err:
        raise fail(err) from None
    from relay.runner import run_stdio

    run_async(lambda: run_stdio(target))


def call(
    args: Annotated[list[str], typer.Argument(metavar="[SERVER] TOOL", help="Server name (unless --url or -- COMMAND) and tool.")],
    *,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", "-a", metavar="KEY=VALUE", help="A tool argument (repeatable); VALUE is typed by the tool's schema.")] = None,
    json_args: Annotated[str | None, typer.Option("--json", "-j", metavar="JSON", help="All arguments as a JSON object.")] = None,
    url: UrlOpt = None,
    transport: TransportOpt = None,
    header: HeaderOpt = None,
    transcript_dir: TranscriptDirOpt = None,
    max_message_bytes: MaxBytesOpt = None,
) -> None:
    """Make one tool call through relay's guards; print the result as JSON on stdout.

    Exit 0 on success, 1 when the call fails or the tool reports isError (the reason on stderr).

      relay call payments lookup_order --arg order_id=ord_1001
    """
    from relay.call import CallSpec, ToolCall, render_result, tool_error
    from relay.runner import run_scripted
    from relay.transports.stdio import write_stdout

    try:
        ad_hoc = bool(url or state.command)
        if ad_hoc and len(args) != 1:
            raise UsageError("with --url or -- COMMAND, give only the TOOL name")
        if not ad_hoc and len(args) != 2:
            raise UsageError("give SERVER and TOOL (or --url URL TOOL)")
        server, tool = (None, args[0]) if ad_hoc else (args[0], args[1])
        spec = CallSpec.parse(tool, arg or [], json_args)
        target = _target(server, url, transport, header, transcript_dir, max_message_bytes)
    except RelayError as err:
        raise fail(err) from None
    caller = ToolCall(spec)
    run_async(lambda: run_scripted(target, caller.script))
    if caller.error is not None or caller.result is None:
        raise fail(caller.error or CallFailed("no result"))
    write_stdout(render_result(caller.result))
    if caller.result.get("isError"):
        raise fail(tool_error(tool, caller.result))


def register(app: typer.Typer) -> None:
    app.command(context_settings={"ignore_unknown_options": False})(run)
    app.command()(call)
