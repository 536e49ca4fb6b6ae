"""`relay verify PATH...`: prove transcripts complete and unaltered (docs/transcript-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from relay.cli.common import fail
from relay.console import console
from relay.errors import RelayError, UsageError


def verify(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Transcript files or directories.")],
    *,
    key: Annotated[Path | None, typer.Option("--key", metavar="FILE",
                                             help="Trusted host public key (PEM, from `relay keys export`) "
                                                  "\\[default: this host's key].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A machine-readable report on stdout.")] = False,
    all_signatures: Annotated[bool, typer.Option("--all-signatures",
                                                 help="Check every record's signature, not just the ones that "
                                                      "vouch for the chain.")] = False,
) -> None:
    """Check signatures, hash chains, seals and the host ledger. Exit 0 intact, 1 tampered, 3 incomplete."""
    from relay.cli.keys_cmd import host_keys
    from relay.transcript.hostkey import load_public_pem
    from relay.transcript.verify import Trust, verify_paths

    try:
        for p in paths:
            if not p.exists():
                raise UsageError(f"{p} does not exist")
        if key is not None:
            try:
                anchors = [load_public_pem(key.read_bytes(), str(key))]
            except OSError as exc:
                raise UsageError(f"cannot read {key}: {exc.strerror or exc}") from None
        else:
            anchors = host_keys().trusted()
    except RelayError as err:
        raise fail(err) from None
    results = verify_paths(paths, Trust(anchors), all_signatures=all_signatures)
    out = console()
    for r in results:
        where = f"{r.path}"
        if r.outcome in ("sealed", "recovered"):
            out.print(f"OK: {where}: {r.outcome}, {r.records} records", markup=False, highlight=False, soft_wrap=True)
        elif r.outcome == "incomplete":
            out.print(f"INCOMPLETE: {where}: {r.records} records; {r.reason}", markup=False, highlight=False, soft_wrap=True)
        else:
            at = f"record {r.record}: " if r.record is not None else ""
            out.print(f"FAIL: {where}: {at}{r.reason}", markup=False, highlight=False, soft_wrap=True)
        for w in r.warnings:
            out.print(f"  warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if not results:
        out.print("no transcripts found", markup=False, highlight=False, soft_wrap=True)
    code = max((r.exit_code for r in results), key=lambda c: (c == 1, c), default=0)
    if as_json:
        from relay.transports.stdio import write_stdout

        write_stdout((json.dumps({"exit_code": code, "results": [r.as_json() for r in results]}, indent=2) + "\n").encode())
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
