"""`relay transcripts list|show|export|ship`: read recorded sessions as a person or an auditor would, and send
them to the collector."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relay.cli.common import fail
from relay.console import console
from relay.errors import RelayError, UsageError

if TYPE_CHECKING:  # cryptography is imported only by the commands that need it
    from relay.transcript.render import Session
    from relay.transcript.verify import Result, Trust

transcripts_app = typer.Typer(help="Recorded sessions: list them, show a timeline, export a report, ship them.",
                              no_args_is_help=True)

Dir = Annotated[Path | None, typer.Option("--dir", metavar="DIR",
                                          help="Transcript directory \\[default: transcripts.dir from the config].")]
Key = Annotated[Path | None, typer.Option("--key", metavar="FILE",
                                          help="Trusted host public key (PEM, from `relay keys export`) "
                                               "\\[default: this host's key].")]
SessionRef = Annotated[str, typer.Argument(metavar="SESSION",
                                           help="A session id, a unique prefix of one, a file, or `latest`.")]


class Format(StrEnum):
    json = "json"
    html = "html"


@transcripts_app.command("list")
def list_(
    *,
    directory: Dir = None,
    key: Key = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array on stdout.")] = False,
) -> None:
    """One line per session: start, server, records, tool calls and what verification says."""
    from relay.transcript import render
    from relay.transcript.verify import verify_paths

    try:
        where = directory or _default_dir()
        trust, why = _trust(key)
        sessions = [render.load(p) for p in render.session_files(where)]
    except RelayError as err:
        raise fail(err) from None
    results = verify_paths([where], trust) if trust is not None and sessions else []
    by_path = {r.path: r for r in results}
    rows = []
    for s in sessions:
        r = by_path.get(s.path) or render.unverified(s, why)
        rows.append({**render.list_row(s), **_outcome(r)})
    for r in results:  # sessions the ledger names whose files are gone
        if r.path not in {s.path for s in sessions} and r.path.name != "ledger.jsonl":
            rows.append({"session": r.session, "path": str(r.path), "start": None, "server": None, "records": 0,
                         "tool_calls": 0, **_outcome(r)})
    out = console()
    for warning in render.ledger_warnings(results):
        out.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        from relay.transports.stdio import write_stdout

        write_stdout((json.dumps([{k: v for k, v in r.items() if k != "label"} for r in rows], indent=2) + "\n").encode())
        return
    if not rows:
        out.print(f"no sessions in {where}", markup=False, highlight=False, soft_wrap=True)
        return
    for line in render.list_lines(rows):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


@transcripts_app.command("show")
def show(session: SessionRef, *, directory: Dir = None, key: Key = None) -> None:
    """A readable timeline: what the agent asked, what it received (masked), approvals and the outcome."""
    from rich.text import Text

    from relay.transcript import render

    s, result = _open(session, directory, key)
    word, detail = render.verdict(result)
    out = console()
    style = {"OK": "bold green", "FAIL": "bold red", "INCOMPLETE": "bold yellow"}.get(word, "bold")
    out.print(Text.assemble((word, style), f": {detail}"), soft_wrap=True)
    if result.record is not None:
        out.print(Text(f"  first bad record: {result.record}"), soft_wrap=True)
    for w in result.warnings:
        out.print(Text(f"  warning: {w}", "yellow"), soft_wrap=True)
    for k, v in render.header(s):
        out.print(Text.assemble((f"{k}: ", "dim"), v), soft_wrap=True)
    out.print()
    for row in render.timeline(s):
        bad = result.record == row.line
        prefix = Text.assemble((f"{row.line:>4} ", "bold red" if bad else "dim"), (f"{row.offset:>9}  ", "dim"))
        if row.kind == "unreadable":
            out.print(Text.assemble(prefix, (row.summary, "red")), soft_wrap=True)
            continue
        color = {"agent -> server": "cyan", "server -> agent": "magenta"}.get(row.direction, "yellow")
        out.print(Text.assemble(prefix, (f"{row.direction:<15}  ", color), (row.what, "bold"),
                                f"  {row.summary}" if row.summary else ""), soft_wrap=True)
        for note in row.notes:
            out.print(Text.assemble(" " * 33, (note, "green")), soft_wrap=True)


@transcripts_app.command("export")
def export(
    session: SessionRef,
    *,
    fmt: Annotated[Format, typer.Option("--format", help="json (records and verification) or html (a report "
                                                         "for an auditor).")] = Format.json,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Write here instead of stdout.")] = None,
    directory: Dir = None,
    key: Key = None,
) -> None:
    """The session with its verification result: JSON, or one self-contained HTML page."""
    from relay import __version__
    from relay.transcript import render

    s, result = _open(session, directory, key)
    if fmt is Format.html:
        text = render.html_report(s, result, generator=f"relay {__version__}")
    else:
        text = json.dumps(render.export_json(s, result), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        from relay.transports.stdio import write_stdout

        write_stdout((text).encode())
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(UsageError(f"cannot write {output}: {exc.strerror or exc}")) from None
    console().print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


@transcripts_app.command("ship")
def ship(
    *,
    directory: Dir = None,
    timeout: Annotated[float, typer.Option("--timeout", metavar="SECONDS",
                                           help="Give up after this long (what is left stays queued).")] = 300.0,
) -> None:
    """Send every session the collector does not have yet (from each session's cursor). Exit 1 if any is left."""
    from relay import config as config_mod
    from relay.cli import state
    from relay.cli.common import run_async
    from relay.transcript.ship import ship_backlog

    try:
        cfg = config_mod.load(state.config_path)
        if cfg.collector.url is None:
            raise UsageError("no collector is configured", hint="set collector.url in the config")
        where = directory or cfg.transcripts.directory
    except RelayError as err:
        raise fail(err) from None
    reports = run_async(lambda: ship_backlog(cfg.collector, where, timeout=timeout))
    out = console()
    for r in reports:
        if r.error:
            out.print(f"FAIL: {r.session}: {r.error} (collector holds up to record {r.acked})",
                      markup=False, highlight=False, soft_wrap=True)
        else:
            out.print(f"OK: {r.session}: {r.shipped} record(s) sent, collector holds up to record {r.acked}",
                      markup=False, highlight=False, soft_wrap=True)
    if not reports:
        out.print(f"no sessions in {where}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1 if any(r.error for r in reports) else 0)


def _default_dir() -> Path:
    from relay.cli.keys_cmd import transcript_dir

    return transcript_dir()


def _trust(key: Path | None) -> tuple[Trust | None, str]:
    """The trust anchors (as `relay verify` takes them), or None and why there are none."""
    from relay.cli.keys_cmd import host_keys
    from relay.transcript.hostkey import load_public_pem
    from relay.transcript.verify import Trust

    if key is not None:
        try:
            return Trust([load_public_pem(key.read_bytes(), str(key))]), ""
        except OSError as exc:
            raise UsageError(f"cannot read {key}: {exc.strerror or exc}") from None
    keys = host_keys()
    try:
        return Trust(keys.trusted()), ""
    except RelayError as err:
        return None, f"no host key to verify against ({err}); give one with --key FILE"


def _open(ref: str, directory: Path | None, key: Path | None) -> tuple[Session, Result]:
    from relay.transcript import render
    from relay.transcript.verify import verify_paths

    try:
        path = render.resolve(directory or _default_dir(), ref)
        trust, why = _trust(key)
        s = render.load(path)
    except RelayError as err:
        raise fail(err) from None
    if trust is None:
        return s, render.unverified(s, why)
    results = verify_paths([path], trust)
    result = next(r for r in results if r.path == path)
    result.warnings += render.ledger_warnings(results)
    return s, result


def _outcome(r: Result) -> dict[str, object]:
    label = "unverified (no host key)" if r.outcome == "unverified" else r.outcome
    if r.outcome == "tampered":
        label += f": {'record ' + str(r.record) + ': ' if r.record is not None else ''}{r.reason}"
    return {"outcome": r.outcome, "label": label, "record": r.record, "reason": r.reason, "warnings": r.warnings}


def register(app: typer.Typer) -> None:
    app.add_typer(transcripts_app, name="transcripts")
