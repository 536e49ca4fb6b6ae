"""An auditor's verifier for relay transcripts, written from docs/transcript-format.md alone.

It imports nothing from relay (only the standard library and `cryptography`), so that the tamper tests can
check relay's verifier against a second reading of the document. Where the document leaves a choice open the
choice made here is marked "DOC:"; the tests then show whether relay made the same one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

PREFIX = b'{"rec":'
SIG_OPEN = b',"sig":"'
SIG_CLOSE = b'"}'
SUFFIX_LEN = len(SIG_OPEN) + 86 + len(SIG_CLOSE)  # 96, as the document says
ZERO = "0" * 64
RECORD_CONTEXT = b"relay.transcript.v1.record\x00"
CERT_CONTEXT = b"relay.transcript.v1.session-key\x00"
ROTATE_CONTEXT = b"relay.transcript.v1.rotate\x00"
LEDGER = "ledger.jsonl"
SESSION_TYPES = {"genesis", "message", "error", "grant", "approval", "ack", "seal", "recovery"}
LEDGER_TYPES = {"open", "seal", "recovery", "rotate"}
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
B64URL = re.compile(rb"[A-Za-z0-9_-]*\Z")
EXIT = {"sealed": 0, "recovered": 0, "tampered": 1, "incomplete": 3}
RANK = {"sealed": 0, "recovered": 0, "incomplete": 1, "tampered": 2}  # DOC: "worst" is not numeric order


@dataclass(frozen=True)
class Result:
    path: Path
    outcome: str  # sealed | recovered | tampered | incomplete
    record: int | None = None  # the first bad record (= line = seq), when one can be named
    reason: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT[self.outcome]


class Bad(Exception):
    def __init__(self, record: int | None, reason: str) -> None:
        super().__init__(f"record {record}: {reason}")
        self.record = record
        self.reason = reason


@dataclass
class Line:
    seq: int
    body: bytes
    sig: bytes
    rec: dict[str, Any]
    digest: bytes
    hash: str


def b64u(text: str | bytes, size: int) -> bytes:
    """Unpadded base64url of exactly `size` bytes, canonical only.

    DOC: the document says "unpadded base64url" for `sig` only; keys and cert just say base64url. Rejecting
    non-canonical text (non-zero spare bits) matters: `hash` covers the decoded signature, so two spellings of
    one signature would make two different lines with one hash.
    """
    raw = text.encode("ascii") if isinstance(text, str) else text
    if not B64URL.match(raw) or len(raw) != (size * 8 + 5) // 6:
        raise ValueError("not unpadded base64url of the right length")
    try:
        out = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except binascii.Error as exc:
        raise ValueError("bad base64url") from exc
    if len(out) != size or base64.urlsafe_b64encode(out).rstrip(b"=") != raw:
        raise ValueError("non-canonical base64url")
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # RFC 8259 has no NaN or Infinity


def parse_line(raw: bytes, seq: int) -> tuple[bytes, bytes, dict[str, Any]]:
    """`raw` is one line without its LF. Returns (BODY, signature, parsed body)."""
    if (len(raw) < len(PREFIX) + SUFFIX_LEN + 2 or not raw.startswith(PREFIX)
            or raw[-SUFFIX_LEN:-SUFFIX_LEN + len(SIG_OPEN)] != SIG_OPEN or not raw.endswith(SIG_CLOSE)):
        raise Bad(seq, "malformed line")
    body = raw[len(PREFIX):-SUFFIX_LEN]
    try:
        sig = b64u(raw[-SUFFIX_LEN + len(SIG_OPEN):-len(SIG_CLOSE)], 64)
    except ValueError as exc:
        raise Bad(seq, f"malformed signature: {exc}") from None
    if b"\r" in body or b"\n" in body:
        raise Bad(seq, "line break in body")
    try:
        rec = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Bad(seq, f"body is not JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise Bad(seq, "body is not a JSON object")
    return body, sig, rec


def read_lines(path: Path, types: set[str], signer: Any = None) -> tuple[list[Line], bytes]:
    """Step 1: shape, common members, seq and prev. Returns the lines and a torn tail (bytes after the last LF).

    DOC: the document never says what a verifier does with a last line that has no LF. A relay killed mid-write
    leaves one, and such a session must be "incomplete", not "tampered"; so a tail without LF is set aside as
    torn, and the caller decides (after a seal or recovery it is something following the end, i.e. tampered).
    """
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    whole, torn = data[:cut], data[cut:]
    out: list[Line] = []
    prev = ZERO
    for i, raw in enumerate(whole.split(b"\n")[:-1], start=1):
        body, sig, rec = parse_line(raw, i)
        s = rec.get("seq")
        if type(s) is not int or s != i:
            raise Bad(i, f"seq is {s!r}, expected {i}")
        if not isinstance(rec.get("ts"), str) or not TS.match(rec["ts"]):
            raise Bad(i, "bad ts")
        if not isinstance(rec.get("prev"), str) or not HEX64.match(rec["prev"]):
            raise Bad(i, "bad prev")
        if rec["prev"] != prev:
            # The doc: a broken link names the previous record when its own signature fails (it was modified),
            # else this one (out of place).
            key = signer(out, out[-1]) if signer is not None and out else None
            if key is not None and not signed(key, out[-1]):
                raise Bad(i - 1, "modified: its signature does not verify")
            raise Bad(i, "prev does not match the previous record's hash")
        if rec.get("type") not in types:  # DOC: unknown types are rejected (no extension rule is given)
            raise Bad(i, f"unknown type {rec.get('type')!r}")
        d = hashlib.sha256(body).digest()
        h = hashlib.sha256(d + sig).hexdigest()
        out.append(Line(i, body, sig, rec, d, h))
        prev = h
    return out, torn


def _session_signer(out: list[Line], line: Line) -> bytes | None:
    if line.rec.get("type") == "recovery":
        return None
    try:
        return b64u(out[0].rec["session_key"], 32)
    except (KeyError, TypeError, ValueError):
        return None


def _ledger_signer(out: list[Line], line: Line) -> bytes | None:
    try:
        return b64u(line.rec["host_key"], 32)
    except (KeyError, TypeError, ValueError):
        return b"\x00" * 32  # no usable signer: the record cannot be genuine


def signed(key: bytes, line: Line) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(line.sig, RECORD_CONTEXT + line.digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def raw_key(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_pem(path: Path) -> bytes:
    pub = load_pem_public_key(path.read_bytes())
    if not isinstance(pub, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return raw_key(pub)


# -- ledger -----------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    keys: set[bytes]  # every host key in the ledger's rotation chain (all equally trusted)
    opens: dict[str, dict[str, Any]] = field(default_factory=dict)
    ends: dict[str, dict[str, Any]] = field(default_factory=dict)


def verify_ledger(path: Path, trusted: set[bytes], hint: Iterable[bytes] = ()) -> Ledger:
    """Chain and signatures of `ledger.jsonl`; raises Bad with a ledger record number.

    DOC: the document does not say which key signs the first ledger record, and a `rotate` names only the new
    key. The first key is found by trying the trusted keys, the `host_key` of every `open` and the caller's
    hints (genesis host keys); it is then followed through `rotate` records.
    """
    lines, torn = read_lines(path, LEDGER_TYPES, _ledger_signer)
    if torn:
        # DOC: not said for the ledger; an append killed mid-line is treated like a session's torn tail.
        pass
    if not lines:
        return Ledger(keys=set())
    candidates = list(trusted) + list(hint)
    for ln in lines:
        if ln.rec["type"] == "open" and isinstance(ln.rec.get("host_key"), str):
            try:
                candidates.append(b64u(ln.rec["host_key"], 32))
            except ValueError:
                pass
    key = next((k for k in candidates if signed(k, lines[0])), None)
    if key is None:
        raise Bad(1, "ledger: no known host key signed the first record")
    chain = {key}
    led = Ledger(keys=chain)
    for ln in lines:
        rec = ln.rec
        if not signed(key, ln):
            raise Bad(ln.seq, "ledger: bad signature")
        kind = rec["type"]
        if kind == "rotate":
            try:
                new = b64u(rec["new_key"], 32)
                endorsement = b64u(rec["endorsement"], 64)
                Ed25519PublicKey.from_public_bytes(new).verify(endorsement, ROTATE_CONTEXT + key + new)
            except (KeyError, TypeError, ValueError, InvalidSignature):
                raise Bad(ln.seq, "ledger: bad rotate endorsement") from None
            key = new
            chain.add(new)
            continue
        session = rec.get("session")
        if not isinstance(session, str):
            raise Bad(ln.seq, "ledger: no session")
        if kind == "open":
            if session in led.opens:
                raise Bad(ln.seq, f"ledger: session {session} opened twice")
            if not isinstance(rec.get("genesis"), str) or not HEX64.match(rec["genesis"]):
                raise Bad(ln.seq, "ledger: bad genesis hash")
            led.opens[session] = rec
        else:
            if session not in led.opens:
                raise Bad(ln.seq, f"ledger: {kind} of a session never opened")
            if session in led.ends:
                raise Bad(ln.seq, f"ledger: session {session} ended twice")
            if type(rec.get("records")) is not int or not isinstance(rec.get("head"), str):
                raise Bad(ln.seq, f"ledger: bad {kind}")
            led.ends[session] = rec
    if not chain & trusted:
        raise Bad(1, "ledger: signed by an untrusted host key")
    return led


# -- session files ----------------------------------------------------------------------------------------


def verify_file(path: Path, trusted_keys: Iterable[bytes], *, all_signatures: bool = False,
                ledger: Ledger | None = None, use_ledger: bool = True) -> Result:
    trusted = set(trusted_keys)
    ledger_path = path.parent / LEDGER
    try:
        if ledger is None and use_ledger and ledger_path.exists():
            hint = _genesis_host_key(path)
            try:
                ledger = verify_ledger(ledger_path, trusted, [hint] if hint else [])
            except Bad as exc:
                return Result(ledger_path, "tampered", exc.record, exc.reason)
        if ledger is not None and ledger.keys & trusted:
            trusted |= ledger.keys  # DOC: a verified rotation makes old and new keys equally trusted
        return _verify_session(path, trusted, all_signatures, ledger)
    except Bad as exc:
        return Result(path, "tampered", exc.record, exc.reason)
    except OSError as exc:
        return Result(path, "tampered", None, f"unreadable: {exc}")


def _genesis_host_key(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            _, _, rec = parse_line(f.readline().rstrip(b"\n"), 1)
        return b64u(rec["host_key"], 32)
    except (Bad, OSError, KeyError, TypeError, ValueError):
        return None


def _verify_session(path: Path, trusted: set[bytes], all_signatures: bool, ledger: Ledger | None) -> Result:
    lines, torn = read_lines(path, SESSION_TYPES, _session_signer)
    if not lines:
        if ledger is not None and path.stem in ledger.opens:
            raise Bad(1, "genesis missing")
        # DOC: an empty file (killed before the genesis was written) is not covered; called incomplete here.
        return Result(path, "incomplete", None, "no complete record")
    g = lines[0].rec
    if g["type"] != "genesis" or g.get("format") != "relay-transcript/1":
        raise Bad(1, "record 1 is not a relay-transcript/1 genesis")
    if g.get("session") != path.stem:
        raise Bad(1, "genesis names another session")
    try:
        session_key = b64u(g["session_key"], 32)
        host_key = b64u(g["host_key"], 32)
        cert = b64u(g["cert"], 64)
    except (KeyError, TypeError, ValueError):
        raise Bad(1, "bad key or cert in genesis") from None
    if host_key not in trusted:
        raise Bad(1, "host key is not trusted")
    try:
        Ed25519PublicKey.from_public_bytes(host_key).verify(
            cert, CERT_CONTEXT + path.stem.encode("utf-8") + b"\x00" + session_key)
    except InvalidSignature:
        raise Bad(1, "bad certificate") from None

    # DOC: `recovery` is "signed by the host key"; after a rotation between the crash and the recovery that
    # is the new key, so any trusted key is accepted here, not only the genesis host_key.
    def good(ln: Line) -> bool:
        if ln.rec["type"] == "recovery":
            return any(signed(k, ln) for k in [host_key, *sorted(trusted - {host_key})])
        return signed(session_key, ln)

    second = next((ln for ln in lines[1:] if ln.rec["type"] == "genesis"), None)
    # Step 4 before signatures: a record after the end is named even when its signature is fine.
    end = next((ln for ln in lines if ln.rec["type"] in ("seal", "recovery")), None)
    if second is not None and (end is None or second.seq < end.seq):
        raise Bad(second.seq, "a genesis that is not record 1")  # "genesis (always seq 1 of a session file)"
    if end is not None and end.seq != len(lines):
        raise Bad(end.seq + 1, f"record after the {end.rec['type']}")
    # Step 3, which records: all, or the last session-key record and every host-key record.
    last_session = _last_session_record(lines)
    to_check = lines if all_signatures else [
        ln for ln in lines if ln.rec["type"] == "recovery" or ln is last_session]
    if not all(good(ln) for ln in to_check):
        bad = next(ln for ln in lines if not good(ln))  # name the first bad one
        raise Bad(bad.seq, "bad signature")
    if end is not None and end.rec["type"] == "seal" and end.rec.get("records") != end.seq:
        raise Bad(end.seq, "seal counts the wrong number of records")
    if end is not None and end.rec["type"] == "recovery" and end.rec.get("last_seq") != end.seq - 1:
        raise Bad(end.seq, "recovery's last_seq is not the record before it")
    if end is not None and torn:
        raise Bad(len(lines) + 1, f"bytes after the {end.rec['type']}")

    # Step 5: the ledger.
    last = lines[-1]
    if ledger is not None:
        op = ledger.opens.get(path.stem)
        if op is None:
            raise Bad(1, "session not in the ledger")  # DOC: only said for directories
        if op.get("genesis") != lines[0].hash:
            raise Bad(1, "ledger names another genesis")
        if op.get("host_key") != g["host_key"]:
            raise Bad(1, "ledger names another host key")
        fin = ledger.ends.get(path.stem)
        if fin is not None:
            if fin["records"] > last.seq:
                raise Bad(last.seq + 1, f"cut short: the ledger's {fin['type']} names record {fin['records']}")
            if fin["records"] < last.seq:
                raise Bad(fin["records"] + 1, f"records after the ledger's {fin['type']}")
            if fin.get("head") != last.hash or last.rec["type"] != fin["type"]:
                raise Bad(last.seq, f"the ledger's {fin['type']} names another record")
        # DOC: a ledger that lags the file (relay died between the file's seal and the ledger's) is accepted.

    if end is None:
        return Result(path, "incomplete", None, "neither sealed nor recovered" + (" (torn tail)" if torn else ""))
    if end.rec["type"] == "recovery":
        return Result(path, "recovered", None, "", (f"recovered after a crash at record {end.seq - 1}",))
    return Result(path, "sealed")


def _last_session_record(lines: Sequence[Line]) -> Line | None:
    return next((ln for ln in reversed(lines) if ln.rec["type"] != "recovery"), None)


# -- paths ------------------------------------------------------------------------------------------------


def verify_paths(paths: Sequence[Path], trusted_keys: Iterable[bytes], *,
                 all_signatures: bool = False) -> tuple[list[Result], int]:
    """Files and directories; returns every result and the exit code (the worst outcome wins)."""
    trusted = set(trusted_keys)
    results: list[Result] = []
    for p in paths:
        if p.is_dir():
            results.extend(verify_directory(p, trusted, all_signatures=all_signatures))
        else:
            results.append(verify_file(p, trusted, all_signatures=all_signatures))
    worst = max(results, key=lambda r: RANK[r.outcome])
    return results, worst.exit_code


def verify_directory(directory: Path, trusted: set[bytes], *, all_signatures: bool = False) -> list[Result]:
    files = sorted(p for p in directory.glob("*.jsonl") if p.name != LEDGER)
    ledger_path = directory / LEDGER
    if not ledger_path.exists():
        # DOC: a directory without a ledger is verified file by file (no completeness claim can be made).
        return [verify_file(p, trusted, all_signatures=all_signatures, use_ledger=False) for p in files]
    hints = [k for k in map(_genesis_host_key, files) if k is not None]
    try:
        ledger = verify_ledger(ledger_path, trusted, hints)
    except Bad as exc:
        return [Result(ledger_path, "tampered", exc.record, exc.reason)]
    results = [verify_file(p, trusted, all_signatures=all_signatures, ledger=ledger) for p in files]
    names = {p.stem for p in files}
    for session in sorted(set(ledger.opens) - names):
        results.append(Result(directory / f"{session}.jsonl", "tampered", None, "missing: named in the ledger"))
    return results
