"""How a detected card value is shown to the agent: last4, bin_last4, token or redact; SAD is always removed."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Literal

PanMode = Literal["last4", "bin_last4", "token", "redact"]
PAN_MODES: tuple[PanMode, ...] = ("last4", "bin_last4", "token", "redact")

_SAD_LABEL = {
    "track1": "TRACK DATA", "track2": "TRACK DATA", "emv_track2": "TRACK DATA", "cvv": "CVV", "pin": "PIN",
}


# Separators written as escapes (%20, &#160;, &#xA0;, &nbsp;): their digits are not the PAN's, and stay as written.
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|&#[0-9]+;|&#[xX][0-9A-Fa-f]+;|&[A-Za-z]+;")


def _keep_digits(original: str, keep: set[int]) -> str:
    """The original text with every decimal digit of the PAN replaced by '*' except the digit positions in
    `keep`; escapes between the groups are left whole."""
    out = []
    n = 0
    pos = 0
    for m in (*_ESCAPE.finditer(original), None):
        stop = m.start() if m is not None else len(original)
        for ch in original[pos:stop]:
            if ch.isdecimal():
                out.append(ch if n in keep else "*")
                n += 1
            else:
                out.append(ch)
        if m is not None:
            out.append(m.group())
            pos = m.end()
    return "".join(out)


_STARS = str.maketrans("0123456789", "*" * 10)
_STAR_BYTES = bytes.maketrans(b"0123456789", b"*" * 10)
_SIX_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){6}")
_FOUR_DIGITS = re.compile(r"(?:\D*\d){4}")  # over a span reversed: its last four digits


def _plain(original: str, count: int) -> bytes | None:
    # ASCII, its last four characters digits, and no digits but the PAN's (a %20 or &#160; has some): then
    # starring every digit but the last four is what _keep_digits does, done by bytes.translate ten times
    # faster (card-dense text has thousands of grouped PANs). The ASCII bytes, else None.
    if not original.isascii():
        return None
    raw = original.encode("ascii")
    if not raw[-4:].isdigit() or len(raw) - len(raw.translate(None, b"0123456789")) != count:
        return None
    return raw


def pan_token(digits: str, key: bytes) -> str:
    """A keyed, stable token for a PAN (HMAC-SHA256; PCI DSS 3.5.1.1 wants hashes of PANs keyed)."""
    return hmac.new(key, digits.encode("ascii"), hashlib.sha256).hexdigest()[:12]


def mask_pan(original: str, digits: str, mode: PanMode, key: bytes | None = None) -> str:
    """`original` is the PAN as written (separators and all); `digits` its ASCII digits."""
    count = len(digits)
    contiguous = original == digits  # the common case, done without a loop
    if mode == "last4":
        if contiguous:
            return "*" * (count - 4) + digits[-4:]
        if (raw := _plain(original, count)) is not None:
            return (raw[:-4].translate(_STAR_BYTES) + raw[-4:]).decode("ascii")
        return _keep_digits(original, set(range(count - 4, count)))
    if mode == "bin_last4":
        # The most PCI DSS 3.4.1 allows to be displayed: the first six and the last four.
        if contiguous:
            return digits[:6] + "*" * (count - 10) + digits[-4:]
        if _plain(original, count) is not None and (m := _SIX_DIGITS.match(original)) is not None:
            return original[: m.end()] + original[m.end() : -4].translate(_STARS) + original[-4:]
        return _keep_digits(original, {*range(6), *range(count - 4, count)})
    if mode == "token":
        if key is None:
            raise ValueError("token mode needs a key")
        return f"[card ****{digits[-4:]} tok_{pan_token(digits, key)}]"
    return "[PAN REDACTED]"


def mask_pans_last4(text: str, found: Sequence[tuple[int, int, str, str]]) -> str | None:
    """`text` with each PAN of `found` (start, end, kind, digits) masked as mask_pan(..., "last4") masks it,
    all at once (card-dense text has thousands); None unless each is a PAN written with ASCII digits and
    separators that hold no digit (the caller then masks them one by one)."""
    if not found:
        return text
    # Each PAN as a head, every digit of which is starred below, and a tail of its last four digits, kept.
    parts: list[str] = []
    append = parts.append
    last = 0
    starred = 0  # digits in the heads
    for start, end, kind, digits in found:
        if kind != "pan":
            return None
        append(text[last:start])
        cut = end - 4
        if not text[cut:end].isdecimal():
            # The last group has fewer than 4 digits: the tail reaches back into the groups before it.
            m = _FOUR_DIGITS.match(text[start:end][::-1])
            if m is None:
                return None
            cut = end - m.end()
        append(text[start:cut])
        append(text[cut:end])
        starred += len(digits) - 4
        last = end
    append(text[last:])
    heads = "\n".join(parts[1::3])  # no PAN's span holds a newline
    if not heads.isascii():
        return None
    heads = heads.translate(_STARS)
    # As many digits starred as the PANs have but their last four: no head holds other digits (a %20, or
    # the first group of a merged candidate).
    starred_heads = heads.split("\n")
    if heads.count("*") != starred or len(starred_heads) != len(found):
        return None
    parts[1::3] = starred_heads
    return "".join(parts)


def redact_sad(kind: str) -> str:
    """Sensitive authentication data is never shown, not even in part (PCI DSS 3.3.1)."""
    return f"[{_SAD_LABEL.get(kind, kind.upper())} REDACTED]"
