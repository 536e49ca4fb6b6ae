"""Verification of transcripts and the host ledger, as docs/transcript-format.md specifies.

Each check either passes or ends the file's verification with the first bad record and the reason; there is
no boolean to forget. Outcomes: sealed / recovered (exit 0), tampered (1), incomplete (3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relay.transcript import ledger as ledger_mod
from relay.transcript.format import (
    FORMAT,
    RECORD_TAG,
    ZERO_HASH,
    FormatError,
    b64,
    parse_body,
    public_bytes,
    record_hash,
    rotate_input,
    session_cert_input,
    split_line,
    unb64,
)

EXIT_CODES = {"sealed": 0, "recovered": 0, "tampered": 1, "incomplete": 3}
# The doc's record types and timestamp shape; format.parse_body checks only the members' JSON types.
SESSION_TYPES = frozenset({"genesis", "message", "error", "grant", "approval", "ack", "seal", "recovery"})
LEDGER_TYPES = frozenset({"open", "seal", "recovery", "rotate"})
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@dataclass
class Result:
    path: Path
    outcome: str  # sealed | recovered | incomplete | tampered
    records: int = 0
    session: str | None = None
    record: int | None = None  # the first bad record (its line number), when tampered
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "session": self.session, "outcome": self.outcome, "records": self.records,
                "record": self.record, "reason": self.reason, "warnings": self.warnings}


class Bad(Exception):
    def __init__(self, record: int | None, reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason


def _verify(key: Ed25519PublicKey, sig: bytes, data: bytes) -> bool:
    try:
        key.verify(sig, data)
    except InvalidSignature:
        return False
    return True


def _public(text: Any, what: str, record: int) -> Ed25519PublicKey:
    if not isinstance(text, str):
        raise Bad(record, f"'{what}' is missing")
    try:
        return Ed25519PublicKey.from_public_bytes(unb64(text, 32))
    except (FormatError, ValueError):
        raise Bad(record, f"'{what}' is not an Ed25519 public key") from None


def _signature(text: Any, what: str, record: int) -> bytes:
    # Attacker-controlled text must end as a Bad record, never as an exception out of verify.
    if not isinstance(text, str):
        raise Bad(record, f"'{what}' is missing")
    try:
        return unb64(text, 64)
    except FormatError:
        raise Bad(record, f"'{what}' is not a signature in unpadded base64url") from None


class Trust:
    """The trusted host keys: anchors, plus keys a verified rotation ties to a trusted one."""

    def __init__(self, anchors: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {public_bytes(k) for k in anchors}

    def trusts(self, raw: bytes) -> bool:
        return raw in self._keys

    def keys(self) -> list[Ed25519PublicKey]:
        return [Ed25519PublicKey.from_public_bytes(raw) for raw in sorted(self._keys)]

    def add_rotations(self, rotations: Sequence[tuple[bytes, bytes]]) -> None:
        changed = True
        while changed:
            changed = False
            for old, new in rotations:
                if (old in self._keys) != (new in self._keys):
                    self._keys |= {old, new}
                    changed = True


@dataclass
class _Line:
    seq: int
    digest: bytes
    sig: bytes
    hash: str
    rec: dict[str, Any]


def _read_lines(path: Path) -> tuple[list[bytes], bytes]:
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    return data[:keep].split(b"\n")[:-1], data[keep:]


def _chain(lines: list[bytes], what: str = "record", types: frozenset[str] = SESSION_TYPES,
           signed: Callable[[list[_Line], _Line], bool] | None = None) -> list[_Line]:
    """Frame, body, common members, seq and prev of every line; Bad at the first that fails.

    `signed(chain, line)` says whether a line's own signature verifies: when a `prev` does not match, it tells
    a modified previous record (bad signature: that record is named) from a record out of place (this one).
    """
    out: list[_Line] = []
    prev = ZERO_HASH
    for n, line in enumerate(lines, 1):
        try:
            body, sig = split_line(line)
            rec = parse_body(body)
        except FormatError as exc:
            raise Bad(n, f"malformed {what}: {exc}") from None
        if not _TS.fullmatch(rec["ts"]):
            raise Bad(n, f"malformed {what}: 'ts' is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
        if rec["type"] not in types:
            raise Bad(n, f"malformed {what}: unknown type {rec['type'][:40]!r}")
        seq = rec["seq"]
        if seq != n:
            if seq < n:
                raise Bad(n, f"{what} {n} carries seq {seq}: a record was duplicated or moved")
            raise Bad(n, f"{what} {n} carries seq {seq}: records {n} to {seq - 1} are missing")
        digest, h = record_hash(body, sig)
        if rec["prev"] != prev:
            if signed is not None and out and not signed(out, out[-1]):
                raise Bad(n - 1, f"{what} {n - 1} was modified: its signature does not verify")
            raise Bad(n, f"{what} {n} does not follow record {n - 1} (its 'prev' is not the hash of record "
                         f"{n - 1}): a record was modified, inserted, removed or reordered")
        out.append(_Line(n, digest, sig, h, rec))
        prev = h
    return out


def _session_signed(chain: list[_Line], line: _Line) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(unb64(chain[0].rec["session_key"], 32))
    except (KeyError, TypeError, ValueError, FormatError):
        return True  # no usable session key: the genesis checks name the problem
    return line.rec["type"] == "recovery" or _verify(key, line.sig, RECORD_TAG + line.digest)


def _ledger_signed(chain: list[_Line], line: _Line) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(unb64(line.rec["host_key"], 32))
    except (KeyError, TypeError, ValueError, FormatError):
        return False
    return _verify(key, line.sig, RECORD_TAG + line.digest)


@dataclass
class LedgerView:
    """What a verified ledger says about each session."""

    path: Path
    opened: dict[str, str] = field(default_factory=dict)  # session -> genesis hash
    ended: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # session -> (type, records, head)


def verify_ledger(directory: Path, trust: Trust) -> tuple[Result, LedgerView | None]:
    """Verify the ledger (every signature) and extend `trust` through its rotations."""
    path = ledger_mod.ledger_path(directory)
    result = Result(path, "sealed")
    try:
        lines, torn = _read_lines(path)
        if torn:
            raise Bad(len(lines) + 1, "incomplete last line")
        chain = _chain(lines, "ledger record", LEDGER_TYPES, _ledger_signed)
        rotations: list[tuple[bytes, bytes]] = []
        for line in chain:
            rec = line.rec
            signer = _public(rec.get("host_key"), "host_key", line.seq)
            if not _verify(signer, line.sig, RECORD_TAG + line.digest):
                raise Bad(line.seq, "bad signature on a ledger record")
            if rec["type"] == "rotate":
                new = _public(rec.get("new_key"), "new_key", line.seq)
                endorsement = _signature(rec.get("endorsement"), "endorsement", line.seq)
                old_raw, new_raw = public_bytes(signer), public_bytes(new)
                if not _verify(new, endorsement, rotate_input(old_raw, new_raw)):
                    raise Bad(line.seq, "a key rotation without a valid endorsement by the new key")
                rotations.append((old_raw, new_raw))
        trust.add_rotations(rotations)
        view = LedgerView(path)
        for line in chain:
            rec = line.rec
            if not trust.trusts(unb64(rec["host_key"], 32)):
                raise Bad(line.seq, f"ledger record signed by an untrusted host key ({rec['host_key']})")
            session = rec.get("session")
            if rec["type"] == "open" and isinstance(session, str):
                view.opened[session] = str(rec.get("genesis"))
            elif rec["type"] in ("seal", "recovery") and isinstance(session, str):
                if type(rec.get("records")) is not int or not isinstance(rec.get("head"), str):
                    raise Bad(line.seq, f"a ledger {rec['type']} without 'records' and 'head'")
                # A relay that died between its genesis and the ledger's "open" is recovered with the genesis here.
                view.opened.setdefault(session, str(rec.get("genesis")))
                view.ended[session] = (rec["type"], rec["records"], rec["head"])
        result.records = len(chain)
        return result, view
    except Bad as bad:
        result.outcome, result.record, result.reason = "tampered", bad.record, bad.reason
        return result, None
    except OSError as exc:
        result.outcome, result.reason = "tampered", f"cannot read: {exc.strerror or exc}"
        return result, None


def verify_file(path: Path, trust: Trust, ledger: LedgerView | None = None, *,
                all_signatures: bool = False) -> Result:
    result = Result(path, "incomplete", session=path.stem)
    try:
        _verify_session(path, trust, ledger, all_signatures, result)
    except Bad as bad:
        result.outcome, result.record, result.reason = "tampered", bad.record, bad.reason
    except OSError as exc:
        result.outcome, result.reason = "tampered", f"cannot read: {exc.strerror or exc}"
    return result


def _verify_session(path: Path, trust: Trust, ledger: LedgerView | None, all_signatures: bool,
                    result: Result) -> None:
    lines, torn = _read_lines(path)
    chain = _chain(lines, signed=_session_signed)
    result.records = len(chain)
    if not chain:
        raise Bad(None, "empty file: no genesis record")
    genesis = chain[0].rec
    if genesis["type"] != "genesis":
        raise Bad(1, "the first record is not a genesis")
    if genesis.get("format") != FORMAT:
        raise Bad(1, f"unknown format {genesis.get('format')!r}")
    if genesis.get("session") != path.stem:
        raise Bad(1, f"the genesis names session {genesis.get('session')!r}, not this file's {path.stem!r}")
    host = _public(genesis.get("host_key"), "host_key", 1)
    session_key = _public(genesis.get("session_key"), "session_key", 1)
    host_raw = public_bytes(host)
    if not trust.trusts(host_raw):
        raise Bad(1, f"certified by a host key that is not trusted ({b64(host_raw)})")
    cert = _signature(genesis.get("cert"), "cert", 1)
    if not _verify(host, cert, session_cert_input(path.stem, public_bytes(session_key))):
        raise Bad(1, "the session key's certificate does not verify under the host key")

    end: str | None = None
    for line in chain[1:]:
        type_ = line.rec["type"]
        if end is not None:
            raise Bad(line.seq, f"a record after the {end}")
        if type_ == "genesis":
            raise Bad(line.seq, "a second genesis (records from another session)")
        if type_ == "seal":
            if line.rec.get("records") != line.seq:
                raise Bad(line.seq, "the seal's record count is not its own seq")
            end = "seal"
        elif type_ == "recovery":
            if line.rec.get("last_seq") != line.seq - 1:
                raise Bad(line.seq, "the recovery record does not name the record before it")
            end = "recovery"

    _check_signatures(chain, session_key, host, trust, all_signatures)
    if torn:
        if end is not None:
            raise Bad(len(chain) + 1, f"bytes after the {end}")
        result.warnings.append(f"an incomplete last line ({len(torn)} bytes), as a crash mid-write leaves it")

    result.outcome = {"seal": "sealed", "recovery": "recovered"}.get(end or "", "incomplete")
    if end == "recovery":
        result.warnings.append("the session ended in a crash and was recovered at the next start")
    if ledger is not None:
        _check_against_ledger(path.stem, chain, ledger)
    if result.outcome == "incomplete":
        result.reason = "no seal and no recovery record: the session is still running, or relay was killed " \
                        "and has not started since"


def _check_signatures(chain: list[_Line], session_key: Ed25519PublicKey, host: Ed25519PublicKey, trust: Trust,
                      all_signatures: bool) -> None:
    def ok(line: _Line) -> bool:
        data = RECORD_TAG + line.digest
        if line.rec["type"] != "recovery":
            return _verify(session_key, line.sig, data)
        # Signed by the host key the next start had (after `relay keys rotate`, the new one), named in the record.
        try:
            raw = unb64(line.rec["host_key"], 32)
        except (KeyError, TypeError, FormatError):
            return False
        return trust.trusts(raw) and _verify(Ed25519PublicKey.from_public_bytes(raw), line.sig, data)

    # Each prev covers the previous signature, so a valid last signature per key vouches for all before it.
    last_session = next(line for line in reversed(chain) if line.rec["type"] != "recovery")
    spot = [last_session] + [line for line in chain if line.rec["type"] == "recovery"]
    if not all_signatures and all(ok(line) for line in spot):
        return
    for line in chain:
        if not ok(line):
            who = "the host key" if line.rec["type"] == "recovery" else "the session key"
            raise Bad(line.seq, f"bad signature (not made by {who}): the record was modified or comes from "
                                "another session")


def _check_against_ledger(session: str, chain: list[_Line], ledger: LedgerView) -> None:
    genesis = ledger.opened.get(session)
    if genesis is None:
        raise Bad(1, "this session is not in the host ledger")
    if genesis != chain[0].hash:
        raise Bad(1, "the genesis differs from the one the host ledger recorded")
    ended = ledger.ended.get(session)
    if ended is None:
        return
    type_, records, head = ended
    if len(chain) < records:
        raise Bad(len(chain) + 1, f"cut short: the host ledger shows this session ended ({type_}) with {records} "
                                  f"records; the file has {len(chain)}")
    if len(chain) > records or chain[-1].hash != head:
        raise Bad(records, f"the host ledger shows a different {type_} record")


def verify_paths(paths: Sequence[Path], trust: Trust, *, all_signatures: bool = False) -> list[Result]:
    """Files and directories; a directory is checked against its ledger, which is checked first."""
    results: list[Result] = []
    ledgers: dict[Path, LedgerView | None] = {}

    def ledger_for(directory: Path) -> LedgerView | None:
        if directory not in ledgers:
            ledgers[directory] = None
            if ledger_mod.ledger_path(directory).exists():
                lresult, view = verify_ledger(directory, trust)
                ledgers[directory] = view
                if lresult.outcome != "sealed":
                    results.append(lresult)
        return ledgers[directory]

    for given in paths:
        if given.is_dir():
            view = ledger_for(given)
            files = sorted(p for p in given.glob("*.jsonl") if p.name != ledger_mod.LEDGER)
            for f in files:
                results.append(verify_file(f, trust, view, all_signatures=all_signatures))
            if view is not None:
                present = {f.stem for f in files}
                for session in view.opened:
                    if session not in present:
                        results.append(Result(given / f"{session}.jsonl", "tampered", session=session,
                                              reason="missing: the host ledger shows this session, its file is gone"))
            elif not ledger_mod.ledger_path(given).exists() and files:
                for r in results[-len(files):]:
                    r.warnings.append("no host ledger in this directory: a deleted session would go unnoticed")
        else:
            view = ledger_for(given.parent) if given.name != ledger_mod.LEDGER else None
            if given.name == ledger_mod.LEDGER:
                lresult, _ = verify_ledger(given.parent, trust)
                results.append(lresult)
            else:
                results.append(verify_file(given, trust, view, all_signatures=all_signatures))
    return results
