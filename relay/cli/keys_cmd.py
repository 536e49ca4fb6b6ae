"""`relay keys show|export|rotate`: the host key that certifies every session's signing key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from relay import config as config_mod
from relay.cli import state
from relay.cli.common import fail
from relay.console import console
from relay.errors import RelayError

if TYPE_CHECKING:  # cryptography is imported only by the commands that need it
    from relay.transcript.hostkey import HostKeys

keys_app = typer.Typer(help="The host key that signs transcripts.", no_args_is_help=True)


def host_keys() -> HostKeys:
    from relay.transcript.hostkey import HostKeys, KeyStore

    t = config_mod.load(state.config_path).transcripts
    return HostKeys(cast(KeyStore, t.effective_key_store), t.key_file)


def transcript_dir() -> Path:
    return config_mod.load(state.config_path).transcripts.directory


@keys_app.command("show")
def show() -> None:
    """Where the host key lives and its fingerprint (never the key)."""
    from relay.transcript.format import public_bytes
    from relay.transcript.hostkey import fingerprint

    try:
        keys = host_keys()
        trusted = keys.trusted()
    except RelayError as err:
        raise fail(err) from None
    out = console()
    out.print(f"host key: {fingerprint(public_bytes(trusted[0]))} (Ed25519) in {keys.describe()}",
              markup=False, highlight=False, soft_wrap=True)
    for old in trusted[1:]:
        out.print(f"replaced key, still trusted for older sessions: {fingerprint(public_bytes(old))}",
                  markup=False, highlight=False, soft_wrap=True)


@keys_app.command("export")
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Write the PEM here instead of stdout.")] = None,
) -> None:
    """The host's public key as PEM: the trust anchor for `relay verify --key` on another machine."""
    from relay.transcript.hostkey import public_pem

    try:
        pem = public_pem(host_keys().load().public_key())
    except RelayError as err:
        raise fail(err) from None
    if output is None:
        from relay.transports.stdio import write_stdout

        write_stdout(pem.encode())
    else:
        output.write_text(pem)
        console().print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


@keys_app.command("rotate")
def rotate() -> None:
    """Replace the host key. Both keys sign the change in the ledger; old transcripts keep verifying."""
    from relay.paths import private_dir
    from relay.transcript import ledger
    from relay.transcript.format import b64, public_bytes, rotate_input
    from relay.transcript.hostkey import fingerprint

    try:
        keys = host_keys()
        old, new = keys.rotate()
        old_raw, new_raw = public_bytes(old.public_key()), public_bytes(new.public_key())
        directory = private_dir(transcript_dir())
        ledger.append(directory, old, "rotate", {
            "new_key": b64(new_raw), "endorsement": b64(new.sign(rotate_input(old_raw, new_raw)))})
    except RelayError as err:
        raise fail(err) from None
    console().print(f"rotated: {fingerprint(old_raw)} -> {fingerprint(new_raw)}; export the new key "
                    "(relay keys export) to every place that verifies this host's transcripts",
                    markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
