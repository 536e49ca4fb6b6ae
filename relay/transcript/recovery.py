"""Crash recovery: at start-up, end every session whose relay died with a host-signed `recovery` record.

Only sessions with an open marker whose file lock is free (their writer is gone) are touched, and only when
the file is intact up to a possibly torn last line; anything else is left exactly as it is for `relay verify`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from relay.errors import GuardError
from relay.transcript import ledger
from relay.transcript.format import (
    RECORD_TAG,
    FormatError,
    b64,
    build_body,
    parse_body,
    public_bytes,
    record_hash,
    seal_line,
    split_line,
    unb64,
)

log = logging.getLogger("relay.transcript")


def recover(directory: Path, host_key: Ed25519PrivateKey) -> list[str]:
    """Recover crashed sessions in `directory`; returns their ids."""
    markers = directory / ".open"
    if not markers.is_dir():
        return []
    recovered = []
    for marker in sorted(markers.iterdir()):
        session = marker.name
        try:
            if _recover_one(directory, session, host_key):
                recovered.append(session)
        except (OSError, FormatError, GuardError) as exc:
            log.warning("could not recover crashed session %s: %s", session, exc)
    if recovered:
        log.warning("recovered %d session(s) that ended in a crash: %s", len(recovered), ", ".join(recovered))
    return recovered


def _recover_one(directory: Path, session: str, host_key: Ed25519PrivateKey) -> bool:
    path = directory / f"{session}.jsonl"
    marker = ledger.open_marker(directory, session)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        marker.unlink()  # died before the genesis: nothing was relayed
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live relay holds it
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        keep = data.rfind(b"\n") + 1
        torn = data[keep:]
        lines = data[:keep].split(b"\n")[:-1]
        if not lines:
            os.close(fd)
            fd = -1
            path.unlink()
            marker.unlink()
            return False
        prev = "0" * 64
        recs = []
        for n, line in enumerate(lines, 1):
            body, sig = split_line(line)
            rec = parse_body(body)
            digest, h = record_hash(body, sig)
            if rec["seq"] != n or rec["prev"] != prev:
                log.warning("session %s is damaged at record %d; left as it is for relay verify", session, n)
                return False
            recs.append((rec, digest, sig, h))
            prev = h
        genesis = recs[0][0]
        last, digest, sig, head = recs[-1]
        if last["type"] in ("seal", "recovery"):
            # Ended on disk, but the relay died before the ledger heard of it.
            ledger.append(directory, host_key, last["type"], {
                "session": session, "records": len(recs), "head": head, "genesis": recs[0][3]})
            marker.unlink()
            return False
        try:
            Ed25519PublicKey.from_public_bytes(unb64(genesis["session_key"], 32)).verify(sig, RECORD_TAG + digest)
        except (InvalidSignature, KeyError, TypeError, ValueError):
            log.warning("session %s: the last record's signature does not verify; left for relay verify", session)
            return False
        if torn:
            os.ftruncate(fd, keep)
        fields: dict[str, object] = {"last_seq": len(recs), "torn_bytes": len(torn)}
        if torn:
            fields["torn_sha256"] = hashlib.sha256(torn).hexdigest()
        fields.update(reason="crash", pid=os.getpid(), host_key=b64(public_bytes(host_key.public_key())))
        line, rhash = seal_line(build_body(len(recs) + 1, head, "recovery", fields), host_key.sign)
        os.write(fd, line)
        os.fsync(fd)
        ledger.append(directory, host_key, "recovery", {
            "session": session, "records": len(recs) + 1, "head": rhash, "genesis": recs[0][3]})
        marker.unlink()
        return True
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
