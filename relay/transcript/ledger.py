"""The host ledger: one signed, hash-chained file per transcript directory naming every session's start and end.

Deleting a session file, or cutting a sealed one short, leaves the ledger pointing at what is gone. Appends
take an exclusive flock, so every relay process on the host shares one chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.errors import GuardError
from relay.transcript.format import (
    ZERO_HASH,
    FormatError,
    b64,
    build_body,
    parse_body,
    public_bytes,
    record_hash,
    seal_line,
    split_line,
)

LEDGER = "ledger.jsonl"


def ledger_path(directory: Path) -> Path:
    return directory / LEDGER


def _last_line(fd: int, size: int) -> bytes | None:
    """The last complete line of the file (without its LF), read from the end."""
    chunk = 4096
    while True:
        start = max(0, size - chunk)
        os.lseek(fd, start, os.SEEK_SET)
        data = os.read(fd, size - start)
        body = data[:-1]  # the file ends in LF here
        at = body.rfind(b"\n")
        if at >= 0 or start == 0:
            return body[at + 1:] if body else None
        chunk *= 4


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def append(directory: Path, key: Ed25519PrivateKey, type_: str, fields: dict[str, Any]) -> str:
    """Append one host-signed record; returns its hash. Raises GuardError if it cannot be written."""
    path = ledger_path(directory)
    fields = {**fields, "host_key": b64(public_bytes(key.public_key()))}  # the signer, for the verifier
    try:
        with _locked(path) as fd:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    # A line torn by a power loss: cut it off and say so in the record that follows.
                    os.lseek(fd, 0, os.SEEK_SET)
                    data = os.read(fd, size)
                    keep = data.rfind(b"\n") + 1
                    os.ftruncate(fd, keep)
                    fields = {**fields, "torn_bytes": size - keep}
                    size = keep
            seq, prev = 1, ZERO_HASH
            if size:
                last = _last_line(fd, size)
                if last is not None:
                    body, sig = split_line(last)
                    seq = parse_body(body)["seq"] + 1
                    prev = record_hash(body, sig)[1]
            line, digest = seal_line(build_body(seq, prev, type_, fields), key.sign)
            os.write(fd, line)
            os.fsync(fd)
            return digest
    except FormatError as exc:
        raise GuardError(f"the host ledger {path} is damaged ({exc}); run relay verify on {directory}") from None
    except OSError as exc:
        raise GuardError(f"cannot write the host ledger {path}: {exc.strerror or exc}") from None


def read(directory: Path) -> list[tuple[bytes, bytes]]:
    """The ledger's lines, split into (BODY, signature); FormatError names the bad line."""
    path = ledger_path(directory)
    out: list[tuple[bytes, bytes]] = []
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                raise FormatError(f"ledger line {n} is incomplete")
            try:
                out.append(split_line(line[:-1]))
            except FormatError as exc:
                raise FormatError(f"ledger line {n}: {exc}") from None
    return out


def open_marker(directory: Path, session: str) -> Path:
    """An empty file that exists while a session is unsealed: start-up finds crashed sessions without reading
    the whole ledger."""
    return directory / ".open" / session
