"""Transcript lines: the frame, the hashes and the signatures of docs/transcript-format.md, and nothing else.

A line is `{"rec":BODY,"sig":"SIG"}`; the signature covers a digest of the exact BODY bytes, and a record's
hash covers digest and signature, so the next record's `prev` pins both. Writers and the verifier share this.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relay.jsonrpc import strict_loads

FORMAT = "relay-transcript/1"
ZERO_HASH = "0" * 64
PREFIX = b'{"rec":'
SIG_OPEN = b',"sig":"'
SIG_CHARS = 86  # 64 bytes, unpadded base64url
SUFFIX_LEN = len(SIG_OPEN) + SIG_CHARS + 2  # ..."}

RECORD_TAG = b"relay.transcript.v1.record\x00"
SESSION_KEY_TAG = b"relay.transcript.v1.session-key\x00"
ROTATE_TAG = b"relay.transcript.v1.rotate\x00"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_sha256 = hashlib.sha256
_b64encode = base64.urlsafe_b64encode


class FormatError(ValueError):
    """A line that is not a well-formed transcript record; the message says what is wrong with it."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str, length: int) -> bytes:
    if len(text) != (length * 4 + 2) // 3 or not text.isascii():
        raise FormatError(f"expected {length} bytes in unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise FormatError(f"expected {length} bytes in unpadded base64url") from None
    if len(data) != length or b64(data) != text:
        raise FormatError(f"expected {length} bytes in unpadded base64url")
    return data


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text: strftime once a second, not per record


def now() -> str:
    """UTC now as YYYY-MM-DDTHH:MM:SS.ffffffZ."""
    ns = time.time_ns()
    sec, micros = divmod(ns // 1000, 1_000_000)
    if sec != _second[0]:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{micros:06d}Z"


def dumps(value: Any) -> str:
    return _dumps(value)


def public_bytes(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def session_cert_input(session: str, session_key: bytes) -> bytes:
    return SESSION_KEY_TAG + session.encode("utf-8") + b"\x00" + session_key


def rotate_input(old_key: bytes, new_key: bytes) -> bytes:
    return ROTATE_TAG + old_key + new_key


Signer = Callable[[bytes], bytes]  # Ed25519: message -> 64-byte signature


def seal_line(body: bytes, sign: Signer) -> tuple[bytes, str]:
    """Sign `body` and frame it: the line (with its LF) and the record's hash (hex) for the next `prev`."""
    digest = _sha256(body).digest()
    sig = sign(RECORD_TAG + digest)
    line = b"".join((PREFIX, body, SIG_OPEN, _b64encode(sig)[:SIG_CHARS], b'"}\n'))  # b64(sig), in bytes
    return line, _sha256(digest + sig).hexdigest()


def body_head(seq: int, prev: str, type_: str) -> str:
    """The members every body starts with, as the opening of a JSON object (no closing brace)."""
    return f'{{"seq":{seq},"ts":"{now()}","prev":"{prev}","type":"{type_}"'


def build_body(seq: int, prev: str, type_: str, fields: dict[str, Any]) -> bytes:
    head = body_head(seq, prev, type_)
    if not fields:
        return (head + "}").encode("utf-8")
    return (head + "," + _dumps(fields)[1:]).encode("utf-8")


def split_line(line: bytes) -> tuple[bytes, bytes]:
    """BODY bytes and the raw signature of one line (without its LF); FormatError if the frame is wrong."""
    if not line.startswith(PREFIX) or len(line) < len(PREFIX) + SUFFIX_LEN + 2:
        raise FormatError('not a transcript record (a line is {"rec":...,"sig":"..."})')
    tail = line[-SUFFIX_LEN:]
    if not tail.startswith(SIG_OPEN) or not tail.endswith(b'"}'):
        raise FormatError("the signature member is missing or malformed")
    body = line[len(PREFIX):-SUFFIX_LEN]
    if b"\n" in body or b"\r" in body:
        raise FormatError("a record body contains a line break")
    sig = unb64(tail[len(SIG_OPEN):-2].decode("ascii", "replace"), 64)
    return body, sig


def record_hash(body: bytes, sig: bytes) -> tuple[bytes, str]:
    """The digest a signature covers, and the record's hash (hex)."""
    digest = hashlib.sha256(body).digest()
    return digest, hashlib.sha256(digest + sig).hexdigest()


def parse_body(body: bytes) -> dict[str, Any]:
    """The record as a dict: strict JSON (no duplicate keys, no NaN), an object, the common members typed."""
    try:
        obj = strict_loads(body.decode("utf-8"))  # no duplicate keys, no NaN: one reading for every verifier
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"the record body is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise FormatError("the record body is not a JSON object")
    seq, ts, prev, type_ = obj.get("seq"), obj.get("ts"), obj.get("prev"), obj.get("type")
    if type(seq) is not int or seq < 1:
        raise FormatError("'seq' is missing or not a positive integer")
    if not isinstance(ts, str) or len(ts) != 27 or not ts.endswith("Z"):
        raise FormatError("'ts' is missing or not a UTC timestamp")
    if not isinstance(prev, str) or len(prev) != 64 or prev.strip("0123456789abcdef"):
        raise FormatError("'prev' is missing or not 64 lowercase hex digits")
    if not isinstance(type_, str):
        raise FormatError("'type' is missing")
    return obj


_decoder = json.JSONDecoder()


def member_text(body: str, name: str) -> str | None:
    """The exact JSON text of a top-level member of `body` (e.g. a record's "message"), or None."""
    i = body.index("{") + 1
    end = len(body)
    while i < end:
        while body[i] in " \t,":
            i += 1
        if body[i] == "}":
            return None
        key, i = _decoder.raw_decode(body, i)
        while body[i] in " \t:":
            i += 1
        _, j = _decoder.raw_decode(body, i)
        if key == name:
            return body[i:j]
        i = j
    return None
