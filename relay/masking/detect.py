"""Card data detection: PANs, magnetic-stripe tracks, EMV track 2 equivalent, CVV and PIN values.

`scan` returns the spans of a string that a masking guard must replace, `sensitive_key` names the JSON keys
whose values are sensitive authentication data, `may_contain` is the cheap pre-filter and `is_pan` the PAN
test (prefix, length, Luhn). Pure functions over one string: no state, no I/O.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from relay.masking.iin import MAX_LENGTH, MIN_LENGTH, RANGES

# How a scan works, cheapest step first (most text never gets past step 1):
#
# 1. Digit chains. A PAN is written as a "chain": digit groups joined by single separators (space, dash, dot,
#    plus, Unicode spaces and dashes, %20, &nbsp;, ...). The text's bytes are mapped to classes (digit that
#    can start a brand's prefix, other digit, separator, "%", other) with `bytes.translate`, and bytes
#    regexes with literal prefixes find the few places where such a digit starts a group of 4 with 12 or
#    more digits in the chain. That is a superset of what step 2 accepts, so `may_contain` uses it too.
#    Text with non-ASCII digits takes the exact Unicode regex over the whole string instead.
# 2. Each chain is split into groups and the rules below pick the PANs; a PAN followed by "=", "^" or "D"
#    is checked for track 2, track 1 and EMV track 2 equivalent structure.
# 3. SAD keywords (CVV, CVC, CID, security code, card code, PIN, PIN block, ...) followed by a value: three
#    regexes over the lowered text, each starting with a literal. Skipped when the text has < 3 digits.
# 4. Text with \u0034-style escapes of digits is decoded first, and the spans are mapped back.
#
# Decisions (each one trades a leak against corrupted data; test_detect.py pins each one down):
#
# - A PAN has 12 to 19 digits, a brand's prefix and length from `iin.py`, and a valid Luhn check digit.
# - A contiguous run of more than 19 digits is an id, never a card, and no PAN is cut out of it.
# - The first group of a PAN has at least 4 digits (every real grouping does: 4-4-4-4, 4-6-5, 6-..., so
#   thousands groups "4 111 111", IP addresses and times never start one).
# - A contiguous run that is itself a PAN is taken alone ("4111111111111111 12/29"); otherwise the longest
#   PAN from each start group is taken, and candidates that overlap are merged into one span: masking a
#   few digits too many beats leaving digits of a real card visible. The digits reported are those of the
#   candidate that ends last ("3000 4111 1111 1111 1111" is one span, card 4111111111111111).
# - Decimal numbers are not cards: no PAN starts right after "<digit>." (a fraction), and two groups joined
#   by one dot ("4111.123456789012") are a decimal number. Three dots ("4111.1111.1111.1111") are a card.
# - A chain introduced by "+" with at most 15 digits is a phone number ("+4930123456789" is E.164, not a
#   13-digit Visa).
# - A contiguous 12- or 13-digit run with a valid GS1 check digit is an EAN/UPC barcode.
# - A digit run inside an all-hex token of 16+ characters that has a letter (ids, keys, md5/sha hashes) is
#   hex, not a card; so is "4111111111111111abc" (a card glued only to hex letters a-f). Runs inside a UUID
#   or a mod-97-valid IBAN are left alone. A "%XX" right before digits is read as an escape first.
# - Keyword values: only the value is reported, never the keyword. "CID" counts only in upper case (the
#   lower-case word is a content/client/customer id). "PIN code" with exactly 6 digits is an Indian postal
#   code (PIN = Postal Index Number); with 4-5 or 7-12 digits it is a PIN.

Kind = Literal["pan", "track1", "track2", "emv_track2", "cvv", "pin"]


@dataclass(frozen=True, slots=True)
class Finding:
    start: int  # span [start, end) in the input string to replace
    end: int
    kind: Kind
    digits: str  # pan / track kinds: the PAN's ASCII digits; "" for cvv / pin


# Findings are built field by field through the slots' descriptors: the same object as Finding(...), in
# 60% of the time the generated __init__ of a frozen dataclass takes (four object.__setattr__ calls).
_new_object = object.__new__
_set_start = vars(Finding)["start"].__set__
_set_end = vars(Finding)["end"].__set__
_set_kind = vars(Finding)["kind"].__set__
_set_digits = vars(Finding)["digits"].__set__


def _finding(start: int, end: int, kind: Kind, digits: str) -> Finding:
    f: Finding = _new_object(Finding)
    _set_start(f, start)
    _set_end(f, end)
    _set_kind(f, kind)
    _set_digits(f, digits)
    return f


# --- IIN lookup -------------------------------------------------------------------------------------

# 4-digit prefix -> bit mask of valid PAN lengths (bit n set: length n valid). Bit 0 means "some 6-digit
# range starts with these 4 digits, look in _LEN6 too".
_LEN4: dict[str, int] = {}
_LEN6: dict[str, int] = {}


def _build_iin_tables() -> None:
    for r in RANGES:
        mask = 0
        for n in r.lengths:
            mask |= 1 << n
        width = len(r.low)
        if width not in (1, 2, 3, 4, 6):
            raise ValueError(f"IIN prefixes of {width} digits are not supported: {r}")
        if width <= 4:
            for head in range(int(r.low), int(r.high) + 1):
                prefix = str(head).zfill(width)
                for tail in range(10 ** (4 - width)):
                    key = prefix + (str(tail).zfill(4 - width) if width < 4 else "")
                    _LEN4[key] = _LEN4.get(key, 0) | mask
        else:
            for head in range(int(r.low), int(r.high) + 1):
                key6 = str(head).zfill(6)
                _LEN6[key6] = _LEN6.get(key6, 0) | mask
                _LEN4[key6[:4]] = _LEN4.get(key6[:4], 0) | 1


_build_iin_tables()
_FIRST_DIGITS = "".join(sorted({key[0] for key in _LEN4}))
_FIRST_SET = frozenset(_FIRST_DIGITS)
_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")  # Luhn: 2*d with its digits summed


def _luhn(digits: str) -> bool:
    # sum() over bytes of ASCII digits is the fastest digit sum CPython offers; 48 is ord("0").
    raw = digits.encode()
    return (sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLE)) - 48 * len(raw)) % 10 == 0


def is_pan(digits: str) -> bool:
    """True if ASCII `digits` are a PAN: a brand's prefix and length, and a valid Luhn check digit."""
    n = len(digits)
    if n < MIN_LENGTH or n > MAX_LENGTH:
        return False
    mask = _LEN4.get(digits[:4], 0)
    if mask & 1:
        mask |= _LEN6.get(digits[:6], 0)
    return bool((mask >> n) & 1) and _luhn(digits)


def _gs1_valid(digits: str) -> bool:
    # GS1 (EAN/UPC/GTIN) check digit: weights 3,1,3,... from the right, excluding the check digit.
    body = digits[-2::-1]
    total = 3 * sum(map(int, body[0::2])) + sum(map(int, body[1::2]))
    return (10 - total % 10) % 10 == int(digits[-1])


# --- separators and Unicode digits ------------------------------------------------------------------

_SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"  # soft hyphen, zero-width space/joiners, BOM
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DOTS = ".\u00b7\u2024\u2027\u30fb\uff0e"
_SEP_CHARS = frozenset(_SPACES + _INVISIBLE + _DASHES + _DOTS + "+")
_DOT_SET = frozenset(_DOTS)
_NON_ASCII_SEPS = "".join(sorted(c for c in _SEP_CHARS if not c.isascii()))

# One separator between two digit groups: a character above, a form/URL-encoded space, dash, dot or plus,
# or an HTML non-breaking space or space entity.
_SEP_MULTI = r"%2[0BbDdEe]|&(?:nbsp|#160|#[xX][aA]0|#32|#[xX]20);"
_SEP_ASCII = r"(?:[ .+\-]|" + _SEP_MULTI + ")"
_SEP_UNI = "(?:[" + re.escape("".join(sorted(_SEP_CHARS))) + "]|" + _SEP_MULTI + ")"

# A chain: a group of at least 4 digits starting with a brand digit, not preceded by a digit (except the
# digits of a %XX escape), then at least 8 more digits with optional single separators, greedy to its end.
_CHAIN_ASCII = re.compile(
    "[" + _FIRST_DIGITS + r"](?:(?<![0-9].)|(?<=%[0-9A-Fa-f]{2}.))[0-9]{3}"
    "(?=(?:" + _SEP_ASCII + "?[0-9]){8})[0-9]*(?:" + _SEP_ASCII + "[0-9]+)*"
)
_CHAIN_UNI = re.compile(
    r"\d(?:(?<!\d.)|(?<=%[0-9A-Fa-f]{2}.))\d{3}(?=(?:" + _SEP_UNI + r"?\d){8})\d*(?:" + _SEP_UNI + r"\d+)*"
)
_TOKENS = re.compile(r"(\d+)|" + _SEP_MULTI + "|.", re.S)
_NON_ASCII_DIGIT = re.compile(r"[^\D0-9]")
_NON_ASCII_SEP = re.compile("[" + _NON_ASCII_SEPS + "]")


class _AsciiDigits(dict[int, int]):
    """str.translate table: any Unicode decimal digit -> its ASCII digit; other characters unchanged."""

    def __missing__(self, cp: int) -> int:
        ch = chr(cp)
        value = ord("0") + unicodedata.digit(ch) if ch.isdecimal() else cp
        self[cp] = value
        return value


_TO_ASCII = _AsciiDigits()


# --- step 1: byte classes ---------------------------------------------------------------------------


def _class_table(high: bytes, ampersand: bytes) -> bytes:
    # B: a digit a brand's prefix can start with, d: any other digit, space: a separator, P: "%" (a %XX
    # escape can separate groups or stand before one), A: "&" when the text has &nbsp;-style separators,
    # x: anything else. Bytes of non-ASCII characters are `high` (" " when the text has non-ASCII
    # separators: up to 3 UTF-8 bytes each).
    table = bytearray(b"x" * 128 + high * 128)
    for c in b"0123456789":
        table[c] = ord("B") if chr(c) in _FIRST_SET else ord("d")
    for c in b" .-+":
        table[c] = ord(" ")
    table[ord("%")] = ord("P")
    table[ord("&")] = ampersand[0]
    return bytes(table)


_CLASS_TABLES = {
    (u, h): _class_table(b" " if u else b"x", b"A" if h else b"x") for u in (0, 1) for h in (0, 1)
}
_ASCII_BYTES = bytes(range(128))
_CONTINUATION = bytes(1 if 0x80 <= c <= 0xBF else 0 for c in range(256))
_DIGIT_BYTES = b"0123456789"

# A chain starts with a group of 4 digits whose first digit can start a brand's prefix ("B"), and has 12
# or more digits, optionally separated. Group starts are found in one of two ways, both measured: where
# brand digits are rare, every "B" is tried and a lookbehind rejects those inside a run; where they are
# dense, two passes look for the literal pairs "xB" and " B", which the regex engine scans for without
# trying every digit (3 to 5 times faster on logs and CSV).
# Exact mode (no "%", no &nbsp;-style separator and no non-ASCII separator in the text): the classes
# follow the exact chain regex character for character, so a match IS a chain, greedy to its end. Loose
# mode: runs of up to 3 separator bytes (a non-ASCII separator), any %XX escape and any short &...; entity
# separate groups too, and the exact regex finds where each chain ends.
# (The tail is written for speed: a lookahead of single-character repeats rejects short numbers before
# anything else is tried, and the chain is then taken a whole group at a time. A chain with fewer than 12
# digits can pass the lookahead; the PAN rules drop it.)
_EXACT_TAIL = rb"[Bd]{3}(?=[Bd ]{8})[Bd]*(?: [Bd]+)*"
_LOOSE_TAIL = rb"[Bd]{3}(?:(?: {0,3}|P..|A.{4,5})[Bd]){8}"
_EXACT = (
    re.compile(rb"B(?<![Bd]B)" + _EXACT_TAIL),
    re.compile(rb"xB" + _EXACT_TAIL),
    # Not after a 4-digit group that starts with a brand digit: a match from that group, which takes the
    # chain to its end, covers this one ("4111 1111 ..." is one match, not one per group).
    re.compile(rb" B(?<![x ]B[Bd]{3} B)" + _EXACT_TAIL),
)
_LOOSE = (
    re.compile(rb"B(?:(?<![Bd]B)|(?<=P..B))" + _LOOSE_TAIL),
    re.compile(rb"xB" + _LOOSE_TAIL),
    re.compile(rb" B" + _LOOSE_TAIL),
)
_LOOSE_AFTER_PERCENT = re.compile(rb"P(..)?B" + _LOOSE_TAIL)
_HTML_SEPS = re.compile(rb"&(?:nbsp|#160|#[xX][aA]0|#32|#[xX]20);")


class _Hot:
    """Where chains may be, from the byte-class pass over one text."""

    __slots__ = ("exact", "has_digits", "spans", "uni_seps")

    def __init__(
        self, spans: list[tuple[int, int]] | None, exact: bool, uni_seps: bool, has_digits: bool
    ) -> None:
        self.spans = spans  # (start, end) of candidate chains; None: the exact Unicode regex over it all
        self.exact = exact  # the spans are the chains; else only the starts count, the exact regex ends them
        self.uni_seps = uni_seps  # the text has non-ASCII separators
        self.has_digits = has_digits  # no digits, no keyword values either


_UNICODE_PATH = _Hot(None, False, True, True)
_NO_DIGITS = _Hot([], True, False, False)  # fewer than 3 digits: no PAN, no CVV, no PIN
_FEW_DIGITS = _Hot([], True, False, True)  # fewer than 12 digits: no PAN, but maybe a CVV or PIN
_BLOCK = 1 << 16


def _hot(text: str) -> _Hot:
    uni_seps = False
    if text.isascii():
        raw = text.encode("ascii")
        if len(raw) < 256:  # short strings (most JSON values): count the digits first, it is cheap
            digits = len(raw) - len(raw.translate(None, _DIGIT_BYTES))
            if digits < 12:
                return _NO_DIGITS if digits < 3 else _FEW_DIGITS
    else:
        raw = text.encode("utf-8", "surrogatepass")
        others = raw.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")
        if _NON_ASCII_DIGIT.search(others):
            return _UNICODE_PATH
        uni_seps = _NON_ASCII_SEP.search(others) is not None
    html = b"&" in raw and _HTML_SEPS.search(raw) is not None
    classes = b"x" + raw.translate(_CLASS_TABLES[uni_seps, html])
    if b"B" not in classes:
        return _Hot([], True, uni_seps, b"d" in classes)
    exact = not uni_seps and not html and b"P" not in classes
    spans: list[tuple[int, int]] = []
    # Blocks of about 64 KiB, each cut at an "other" byte that no chain crosses (nor a %XX escape), so that
    # each block gets the way of finding group starts that suits its own density of brand digits.
    size = len(classes)
    pos = 0
    while pos < size:
        end = classes.find(b"x", pos + _BLOCK) if pos + _BLOCK < size else -1
        while end > 0 and not exact and (b"P" in classes[end - 2 : end] or b"A" in classes[end - 5 : end]):
            end = classes.find(b"x", end + 1)
        if end < 0:
            end = size
        if classes.find(b"B", pos, end) >= 0:
            _block_spans(classes, pos, end, exact, spans)
        pos = end
    if spans and len(raw) != len(text):
        starts = _bytes_to_chars(raw, [a for a, _ in spans])
        ends = _bytes_to_chars(raw, [b for _, b in spans]) if exact else starts
        spans = list(zip(starts, ends, strict=True))
    return _Hot(spans, exact, uni_seps, True)


def _block_spans(classes: bytes, pos: int, end: int, exact: bool, spans: list[tuple[int, int]]) -> None:
    """(first digit, end) of chain candidates in classes[pos:end], as offsets into the raw bytes (one less
    than in `classes`, which starts with an extra "x"); a pair match starts one before its "B"."""
    sparse, after_other, after_sep = _EXACT if exact else _LOOSE
    if classes.count(b"B", pos, min(end, pos + 4096)) * 16 < min(end - pos, 4096):
        spans += [(m.start() - 1, m.end() - 1) for m in sparse.finditer(classes, pos, end)]
        return
    found = [(m.start(), m.end() - 1) for m in after_other.finditer(classes, pos, end)]
    found += [(m.start(), m.end() - 1) for m in after_sep.finditer(classes, pos, end)]
    if not exact:
        found += [
            (m.start() + (2 if m.group(1) else 0), m.end() - 1)
            for m in _LOOSE_AFTER_PERCENT.finditer(classes, pos, end)
        ]
    found.sort()
    spans += found


def _bytes_to_chars(raw: bytes, offsets: list[int]) -> list[int]:
    """Character offsets of UTF-8 byte offsets (each at a character boundary)."""
    cont = raw.translate(_CONTINUATION)
    done: dict[int, int] = {}
    seen = 0
    last = 0
    for off in sorted(set(offsets)):
        seen += cont.count(1, last, off)
        last = off
        done[off] = off - seen
    return [done[off] for off in offsets]


# --- step 2: chains, PANs and tracks ----------------------------------------------------------------

# After the PAN: ^NAME^ then expiry YYMM and service code (either may be absent, written "^"), then
# discretionary data up to the end sentinel "?" (track 1); "=" then the same fields (track 2).
_TRACK1_TAIL = re.compile(r"\^[^\^\r\n]{0,26}\^(?:\d{7}|\d{4}\^|\^\d{3})(?:[0-9 ]{0,79}\?|[0-9A-Za-z]*)")
_TRACK2_TAIL = re.compile(r"=(?:\d{7}|\d{4}=|=\d{3})\d*\??")
_EMV_TAIL = re.compile(r"[Dd]\d{7}[0-9A-Fa-f]*")
_EMV_HEADER = re.compile(r"57[0-9A-Fa-f]{2}")  # EMV tag 57 (track 2 equivalent data) and its length
_TRACK_NEXT = frozenset("=^Dd")
_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_LETTERS = frozenset("abcdefABCDEF")
_HEX_OR_DASH = frozenset("0123456789abcdefABCDEF-")
_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_IBAN = re.compile(r"(?<![0-9A-Za-z])[A-Z]{2}[0-9]{2}(?:[ \-\u00a0]?[0-9A-Z]){11,30}")
_IBAN_SEPS = re.compile(r"[ \-\u00a0]")
_IBAN_BEFORE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# The neighbours of a contiguous run of 14+ digits for which a rule of _pan_context_ok can apply.
_CONTEXT_PREV = _HEX_OR_DASH | _IBAN_BEFORE | _SEP_CHARS | _HEX_LETTERS
_CONTEXT_NEXT = _HEX_OR_DASH

# A digit group: (start, end, ASCII digits).
_Group = tuple[int, int, str]


def _is_dot(sep: str) -> bool:
    return sep in _DOT_SET or sep.lower() == "%2e"


def _chain_start(text: str, s: int) -> int:
    """Start of the chain whose part from `s` on matched (earlier groups did not qualify)."""
    p = s
    while p >= 2 and text[p - 1] in _SEP_CHARS and text[p - 2].isdecimal():
        p -= 1
        while p > 0 and text[p - 1].isdecimal():
            p -= 1
    return p


def _in_hex_string(text: str, start: int, end: int) -> bool:
    """True if text[start:end] lies in an all-hex token of 16+ characters with a letter (an id, a hash)."""
    a = start
    while a > 0 and text[a - 1] in _ALNUM and start - a < 128:
        a -= 1
    if a > 0 and text[a - 1] == "%" and start - a >= 2:
        a += 2  # "%3A4111...": the two hex digits belong to a %XX escape
    b = end
    while b < len(text) and text[b] in _ALNUM and b - end < 128:
        b += 1
    token = text[a:b]
    return len(token) >= 16 and not token.isdecimal() and all(c in _HEX for c in token)


def _in_uuid(text: str, start: int, end: int) -> bool:
    for m in _UUID.finditer(text, max(0, start - 36), min(len(text), end + 36)):
        if m.start() <= start and end <= m.end():
            return True
    return False


def _in_iban(text: str, start: int, end: int) -> bool:
    for m in _IBAN.finditer(text, max(0, start - 42), min(len(text), end + 42)):
        if m.start() > start or m.end() < end:
            continue
        # The regex may run past the IBAN into following capitals; try each token boundary, longest first.
        pieces = _IBAN_SEPS.split(m.group())
        for k in range(len(pieces), 0, -1):
            compact = "".join(pieces[:k])
            if len(compact) < 15:
                break
            if len(compact) <= 34 and _iban_valid(compact) and m.start() + len(" ".join(pieces[:k])) >= end:
                return True
    return False


def _iban_valid(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def _pan_context_ok(text: str, start: int, end: int, digits: str, contiguous: bool) -> bool:
    """The exclusions that need the surrounding text (barcodes, hex strings, UUIDs, IBANs)."""
    prev = text[start - 1] if start > 0 else ""
    nxt = text[end : end + 1]
    if contiguous:
        if len(digits) <= 13 and _gs1_valid(digits):
            return False
        if (prev in _HEX_LETTERS or nxt in _HEX_LETTERS) and _in_hex_string(text, start, end):
            return False
    # Inside a UUID (never all of one: 32 hex digits), a neighbour is a hex digit or a dash.
    if (prev in _HEX_OR_DASH or nxt in _HEX_OR_DASH) and _in_uuid(text, start, end):
        return False
    # IBANs are upper case: digits glued to a capital ("BE68539007547034") or a group after a group
    # ("FR76 3000 6000 ...", "GB82 WEST 1234 ...").
    if prev in _IBAN_BEFORE or (prev in _SEP_CHARS and start >= 2 and text[start - 2] in _IBAN_BEFORE):
        return not _in_iban(text, start, end)
    return True


def _track(text: str, group: _Group) -> Finding | None:
    gs, ge, digits = group
    nxt = text[ge] if ge < len(text) else ""
    if nxt == "=":
        m = _TRACK2_TAIL.match(text, ge)
        if m and is_pan(digits):
            start = gs - 1 if gs > 0 and text[gs - 1] == ";" else gs
            return Finding(start, m.end(), "track2", digits)
    elif nxt == "^":
        m = _TRACK1_TAIL.match(text, ge)
        if m and is_pan(digits):
            start = gs
            if start > 0 and text[start - 1] in "Bb":
                start -= 1
            if start > 0 and text[start - 1] == "%":
                start -= 1
            return Finding(start, m.end(), "track1", digits)
    elif nxt in ("D", "d"):
        m = _EMV_TAIL.match(text, ge)
        if m:
            if len(digits) <= MAX_LENGTH and is_pan(digits):
                prev = text[gs - 1] if gs > 0 else ""
                if prev in _HEX_LETTERS and not _EMV_HEADER.fullmatch(text, max(0, gs - 4), gs):
                    return None  # a digit run inside a hex string, not EMV data
                return Finding(gs, m.end(), "emv_track2", digits)
            if digits.startswith("57") and is_pan(digits[4:]):
                return Finding(gs + 4, m.end(), "emv_track2", digits[4:])
    return None


_DIGIT_RUNS = re.compile(r"\d+")


def _groups(text: str, s: int, e: int, ascii_text: bool) -> tuple[list[_Group], list[str]]:
    groups: list[_Group] = []
    seps: list[str] = []
    chunk = text[s:e]
    if "%" not in chunk and "&" not in chunk:
        # Single-character separators only: the separator after a group is the character at its end.
        for m in _DIGIT_RUNS.finditer(text, s, e):
            run = m.group()
            groups.append((m.start(), m.end(), run if ascii_text else run.translate(_TO_ASCII)))
            if m.end() < e:
                seps.append(text[m.end()])
        return groups, seps
    for m in _TOKENS.finditer(text, s, e):
        run = m.group(1)
        if run is None:
            seps.append(m.group())
        else:
            groups.append((m.start(), m.end(), run if ascii_text else run.translate(_TO_ASCII)))
    return groups, seps


def _chain(text: str, s: int, e: int, ascii_text: bool, out: list[Finding]) -> int:
    """Findings in the chain text[s:e] (a match of the chain regex), appended to `out` in order. Returns
    where the next chain may start: `e`, or the end of a track that runs on past the chain."""
    prev = text[s - 1] if s > 0 else ""
    dot_before = False
    if prev in _SEP_CHARS:
        before = text[s - 2] if s >= 2 else ""
        if prev == "+" or before.isdecimal():
            start = _chain_start(text, s)
            if start > 0 and text[start - 1] == "+" and not (start >= 2 and text[start - 2].isdecimal()):
                # "+49 30 1234...", "+4930123456789": a phone number, if it is short enough for E.164.
                if sum(c.isdecimal() for c in text[start:e]) <= 15:
                    return e
            dot_before = prev in _DOT_SET and before.isdecimal()
    track_next = text[e : e + 1] in _TRACK_NEXT

    chunk = text[s:e]
    if chunk.isdecimal():
        # The common case: one contiguous run of digits.
        digits = chunk if ascii_text else chunk.translate(_TO_ASCII)
        if track_next:
            tail = _track(text, (s, e, digits))
            if tail is not None:
                out.append(tail)
                return tail.end
        n = len(digits)
        if not dot_before and MIN_LENGTH <= n <= MAX_LENGTH:
            mask = _LEN4.get(digits[:4], 0)  # is_pan(), inlined: this is the hot path of card-dense text
            if mask & 1:
                mask |= _LEN6.get(digits[:6], 0)
            if (mask >> n) & 1 and _luhn(digits):
                nxt = text[e : e + 1]
                if (n > 13 and prev not in _CONTEXT_PREV and nxt not in _CONTEXT_NEXT) or _pan_context_ok(
                    text, s, e, digits, True
                ):
                    out.append(_finding(s, e, "pan", digits))
        return e

    if ascii_text and not track_next and not dot_before:
        # The common grouped case: the whole chain is one PAN ("4111 1111 1111 1111", "3782 822463 10005"),
        # ASCII separators only. With single-character separators, len(chunk) - len(digits) is their count.
        digits = chunk.encode().translate(None, b" .-+").decode()
        first_size = len(chunk) - len(chunk.lstrip("0123456789"))
        if (
            digits.isdecimal()
            and first_size < MIN_LENGTH
            and len(digits) <= MAX_LENGTH
            and is_pan(digits)
            and not (len(chunk) - len(digits) == 1 and chunk[first_size] == ".")
            and _pan_context_ok(text, s, e, digits, False)
        ):
            out.append(_finding(s, e, "pan", digits))
            return e

    groups, seps = _groups(text, s, e, ascii_text)
    tail = _track(text, groups[-1]) if track_next else None
    if tail is not None:
        groups = groups[:-1]
    n = len(groups)

    # Candidates: (first group, last group, digits).
    cands: list[tuple[int, int, str]] = []
    for i in range(n):
        gs, ge, first = groups[i]
        size = len(first)
        if size < 4 or size > MAX_LENGTH or first[0] not in _FIRST_SET:
            continue
        if dot_before if i == 0 else _is_dot(seps[i - 1]):
            continue  # the fraction of a decimal number, or the inside of a dotted number
        if size >= MIN_LENGTH and is_pan(first):
            if _pan_context_ok(text, gs, ge, first, True):
                cands.append((i, i, first))
            continue
        acc = first
        best: tuple[int, str] | None = None
        for j in range(i + 1, n):
            acc += groups[j][2]
            if len(acc) > MAX_LENGTH:
                break
            if len(acc) >= MIN_LENGTH and is_pan(acc):
                if j == i + 1 and _is_dot(seps[i]):
                    continue  # 4111.123456789012 is a decimal number
                if _pan_context_ok(text, gs, groups[j][1], acc, False):
                    best = (j, acc)
        if best is not None:
            cands.append((i, best[0], best[1]))

    # Merge overlapping candidates; the digits are those of the candidate that ends last (the longest
    # one on a tie, which is the one that came first).
    k = 0
    while k < len(cands):
        i, j, digits = cands[k]
        k += 1
        while k < len(cands) and cands[k][0] <= j:
            if cands[k][1] > j:
                j, digits = cands[k][1], cands[k][2]
            k += 1
        out.append(_finding(groups[i][0], groups[j][1], "pan", digits))
    if tail is not None:
        out.append(tail)
        return tail.end
    return e


def _scan_chains(text: str, hot: _Hot, out: list[Finding]) -> None:
    spans = hot.spans
    if spans is None:
        pos = 0
        search = _CHAIN_UNI.search
        while (m := search(text, pos)) is not None:
            pos = _chain_after_escape(text, m.start(), _CHAIN_UNI, False, out) or _chain_from(
                text, m, False, out
            )
        return
    done = 0
    if hot.exact:
        for s, e in spans:
            if s >= done:
                done = _chain(text, s, e, True, out)
        return
    regex = _CHAIN_UNI if hot.uni_seps else _CHAIN_ASCII
    match = regex.match
    for p, _ in spans:
        if p < done:
            continue
        end = _chain_after_escape(text, p, regex, True, out)
        if end:
            done = end
            continue
        m = match(text, p)
        if m is None:
            # The hot regex is a superset of the exact one: a group may start a little further on.
            m = regex.search(text, p + 1, min(len(text), p + 128))
            if m is None:
                continue
            m = match(text, m.start())
            if m is None:  # pragma: no cover - search found it, so it matches from there
                continue
        done = _chain_from(text, m, True, out)


def _chain_from(text: str, m: re.Match[str], ascii_digits: bool, out: list[Finding]) -> int:
    return _chain(text, m.start(), m.end(), ascii_digits, out)


def _chain_after_escape(
    text: str, p: int, regex: re.Pattern[str], ascii_digits: bool, out: list[Finding]
) -> int:
    """For a chain that starts right after "%": read the first two digits as the rest of a %XX escape
    ("card%204111..."). Returns the chain's end if that reading found something, else 0 (and the digits
    are then read as they stand: "50%4111..." has no escape)."""
    if p == 0 or text[p - 1] != "%" or p + 2 >= len(text):
        return 0
    m = regex.match(text, p + 2)
    if m is None:
        return 0
    before = len(out)
    end = _chain(text, p + 2, m.end(), ascii_digits, out)
    return end if len(out) > before else 0


# --- step 3: keywords -------------------------------------------------------------------------------

# Between a keyword and its value: punctuation, quotes, escaped quotes, brackets, HTML tags, a short
# parenthesis ("CVV (3 digits): 123"), URL-encoded `=`/`:`/`"`/space, and one filler word ("CVV is 123").
# Not "." or ",": "Enter your PIN. 2000 customers did" is two sentences.
_GAP = (
    r"(?:[\s\"'`:=#*|>\-\[\](){}/\\]|</?[a-z][^<>\n]{0,40}>|\([^()\n]{0,24}\)"
    r"|%(?:3[ad]|2[02])|&(?:quot|nbsp|#\d{2,3});)"
)
_FILL = _GAP + r"{1,12}(?:(?:is|was|number|num|no\.?|value|of)(?![a-z0-9])" + _GAP + r"{1,8})?"
_SUFFIX = r"(?:[ _\-]?(?:code|number|num|no\.?|value))?(?![a-z0-9])"
_HEX16 = r"[0-9a-f]{16}(?![0-9a-z])"

# Three regexes over the lowered text, each starting with a literal so that the regex engine scans for it
# quickly; the lookbehind right after the literal checks that the keyword does not continue a word
# ("spin", "mycvv"). Every value is the named group "v", "w" or "y".
_KW_C = re.compile(
    r"c(?<![a-z0-9]c)(?:(?:v(?:[vcnd]2?|2)|av2|sc|(?P<cid>id))"
    + _SUFFIX
    + r"|ard[ _\-]?(?:code|security[ _\-]?code|(?:verification|validation)[ _\-]?(?:value|code|number)"
    r"|identification[ _\-]?(?:number|code))(?![a-z0-9]))" + _FILL + r"(?P<v>\d{3,4})(?!\d)"
)
_KW_SECURITY = re.compile(
    r"security(?<![a-z0-9]security)[ _\-]?code" + _SUFFIX + _FILL + r"(?P<v>\d{3,4})(?!\d)"
)
_KW_PIN = re.compile(
    r"pin(?<![a-z0-9]pin)(?:"
    r"[ _\-]?block(?![a-z0-9])"
    + _FILL
    + r"(?P<w>[0-9a-f]{16}|[0-9a-f]{4}(?:[ \-][0-9a-f]{4}){3})(?![0-9a-z])"
    # "PIN code 560001" is an Indian postal code; a 4-5 or 7-12 digit "PIN code" is a PIN.
    r"|[ _\-]?code(?![a-z0-9])" + _FILL + r"(?!\d{6}(?!\d))(?P<y>\d{4,12})(?!\d)"
    r"|(?:[ _\-]?(?:number|num|no))?(?![a-z0-9])" + _FILL + r"(?P<v>" + _HEX16 + r"|\d{4,12}(?!\d)))"
)
_KEYWORDS: tuple[tuple[re.Pattern[str], Kind], ...] = (
    (_KW_C, "cvv"),
    (_KW_SECURITY, "cvv"),
    (_KW_PIN, "pin"),
)


def _lower(text: str) -> str:
    # str.lower() keeps every index except for U+0130 (capital I with dot), which becomes two characters.
    return text.lower() if text.isascii() or "\u0130" not in text else text.replace("\u0130", "I").lower()


def _scan_keywords(text: str, low: str, out: list[Finding]) -> None:
    for regex, kind in _KEYWORDS:
        for m in regex.finditer(low):
            if kind == "cvv" and regex is _KW_C and m.group("cid") is not None:
                if text[m.start() : m.start() + 3] != "CID":
                    continue  # lower-case "cid" is a content/client/customer id
            name = "v" if m.group("v") is not None else "w" if m.group("w") is not None else "y"
            out.append(Finding(m.start(name), m.end(name), kind, ""))


def _any_keyword(text: str, low: str) -> bool:
    for regex, _ in _KEYWORDS:
        for m in regex.finditer(low):
            if regex is _KW_C and m.group("cid") is not None and text[m.start() : m.start() + 3] != "CID":
                continue
            return True
    return False


# --- step 4: \\uXXXX escapes ------------------------------------------------------------------------

# Escapes of ASCII, fullwidth, Arabic-Indic, Extended Arabic-Indic and Devanagari digits trigger decoding.
# Any number of backslashes counts: JSON inside a JSON string has its escapes escaped again (\\u0034).
_ESCAPED_DIGIT = re.compile(r"\\u(?:003[0-9]|[fF][fF]1[0-9]|06[6fF][0-9]|096[6-9a-fA-F])")
_ESCAPE = re.compile(r"\\+u([dD][89abAB][0-9a-fA-F]{2})\\+u([dD][c-fC-F][0-9a-fA-F]{2})|\\+u([0-9a-fA-F]{4})")


class _OffsetMap:
    """Maps indices of the decoded text back to the text with escapes."""

    def __init__(self, marks: list[tuple[int, int, int]]) -> None:
        self._marks = marks  # (decoded index, original index, original length) of each decoded escape
        self._keys = [d for d, _, _ in marks]

    def start(self, d: int) -> int:
        k = bisect.bisect_right(self._keys, d) - 1
        if k < 0:
            return d
        dk, ok, length = self._marks[k]
        return ok if d == dk else ok + length + (d - dk - 1)

    def end(self, d: int) -> int:
        if d == 0:
            return 0
        last = d - 1
        k = bisect.bisect_right(self._keys, last) - 1
        if k < 0:
            return d
        dk, ok, length = self._marks[k]
        return ok + length if last == dk else ok + length + (last - dk)


def _decode_escapes(text: str) -> tuple[str, _OffsetMap]:
    parts: list[str] = []
    marks: list[tuple[int, int, int]] = []
    last = 0
    decoded_len = 0
    for m in _ESCAPE.finditer(text):
        if m.group(3) is not None:
            ch = chr(int(m.group(3), 16))
        else:
            high, low = int(m.group(1), 16), int(m.group(2), 16)
            ch = chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        parts.append(text[last : m.start()])
        decoded_len += m.start() - last
        marks.append((decoded_len, m.start(), m.end() - m.start()))
        parts.append(ch)
        decoded_len += 1
        last = m.end()
    parts.append(text[last:])
    return "".join(parts), _OffsetMap(marks)


# --- public API -------------------------------------------------------------------------------------


def _scan_plain(text: str) -> list[Finding]:
    out: list[Finding] = []
    hot = _hot(text)
    _scan_chains(text, hot, out)
    # Keyword values are digits (a 16-digit hex PIN block without any decimal digit is left to chance).
    if hot.has_digits:
        cards = len(out)
        _scan_keywords(text, _lower(text), out)
        if len(out) > cards:
            return _resolve(out, cards)
    return out


def _resolve(out: list[Finding], cards: int) -> list[Finding]:
    """Card findings win over keyword values that overlap them; overlapping keyword values keep the first."""
    keep = out[:cards]
    spans = sorted((f.start, f.end) for f in keep)
    starts = [a for a, _ in spans]
    for f in sorted(out[cards:], key=lambda f: (f.start, -f.end)):
        k = bisect.bisect_right(starts, f.start)
        if k > 0 and spans[k - 1][1] > f.start:
            continue
        if k < len(spans) and spans[k][0] < f.end:
            continue
        keep.append(f)
        spans.insert(k, (f.start, f.end))
        starts.insert(k, f.start)
    keep.sort(key=lambda f: f.start)
    return keep


def scan(text: str) -> list[Finding]:
    """Card data in `text`: spans sorted by start, not overlapping; track spans cover the whole track."""
    if "\\" in text and _ESCAPED_DIGIT.search(text):
        decoded, offsets = _decode_escapes(text)
        return [
            Finding(offsets.start(f.start), offsets.end(f.end), f.kind, f.digits)
            for f in _scan_plain(decoded)
        ]
    return _scan_plain(text)


def may_contain(text: str) -> bool:
    """Cheap, conservative pre-filter: False guarantees `scan(text) == []`."""
    if "\\" in text and _ESCAPED_DIGIT.search(text):
        return True
    hot = _hot(text)
    if hot.spans is None:
        if _CHAIN_UNI.search(text):
            return True
    elif hot.spans:
        return True
    return hot.has_digits and _any_keyword(text, _lower(text))


# --- JSON keys --------------------------------------------------------------------------------------

_KEY_TOKENS = re.compile(r"[A-Z]+(?=[A-Z][a-z])\d*|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")
# A term may be followed by one of these words: cvv_code, cvcNumber, pinBlockEncrypted, securityCodeRaw.
_QUALIFIERS = ("", "code", "number", "num", "no", "value", "data", "encrypted", "enc", "raw", "clear",
               "plain")  # fmt: skip
_CVV_TERMS = (
    "cvv", "cvv2", "cvc", "cvc2", "cvn", "cvn2", "cvd", "cvd2", "cav2", "cv2", "csc", "cvp2",
    "cvnumber",  # CyberSource's cvNumber
    "securitycode", "cardsecuritycode", "cardverificationvalue", "cardverificationcode",
    "cardverificationnumber", "cardvalidationcode", "cardvalidationvalue", "cardidentificationnumber",
    "cardcid", "amexcid",
)  # fmt: skip
_CVV_FORMS = frozenset(term + q for term in _CVV_TERMS for q in _QUALIFIERS)
# "pincode" is left out: it is the Indian postal code field.
_PIN_FORMS = frozenset(term + q for term in ("pin", "pinblock") for q in _QUALIFIERS if q != "code")
# "cardCode" is Authorize.Net's CVV field, but "giftCardCode" is not: only payment-card words may lead it.
_WEAK_CVV_FORMS = frozenset({"cardcode"})
_CARD_WORDS = frozenset({"credit", "debit", "payment", "cc", "bank"})
# Leading words that make the key a flag or a setting about the value, not the value itself.
_FLAG_WORDS = frozenset(
    {
        "has", "is", "require", "requires", "required", "collect", "collects", "verify", "skip", "enable",
        "enabled", "disable", "disabled", "show", "hide", "use", "uses", "need", "needs", "allow", "allows",
        "support", "supports", "supported", "accept", "accepts", "ask", "request", "requested", "validate",
        "min", "max", "no", "with", "without", "should", "can", "must", "include", "includes", "check",
    }
)  # fmt: skip
# Leading words for which "pin" is a map pin or a certificate pin.
_NOT_CARD_PIN = frozenset(
    {"map", "location", "geo", "drop", "cert", "certificate", "ssl", "tls", "public", "key", "spki", "hash"}
)


@lru_cache(maxsize=4096)
def sensitive_key(name: str) -> Kind | None:
    """The kind of sensitive authentication data ("cvv" or "pin") a JSON key holds, else None.

    Case, separator and camel-case insensitive: cvv, card_cvc, securityCode, CVV2, cardVerificationValue,
    pin, pinBlock, PIN_BLOCK. The key must END in the term (cvc_check, cvvResult, pinLength are about the
    value, not the value) and must not start with a flag word (requireCvv, hasPin). Not matched on purpose:
    pinned, spinner, shipping (other words), cid (content/client id), pincode / pin_code (Indian postal code),
    mapPin / certPin, giftCardCode.
    """
    tokens = [t.lower() for t in _KEY_TOKENS.findall(name)]
    for k in range(min(4, len(tokens)), 0, -1):
        form = "".join(tokens[-k:])
        lead = tokens[:-k]
        if _FLAG_WORDS.intersection(lead):
            continue
        if form in _CVV_FORMS:
            return "cvv"
        if form in _WEAK_CVV_FORMS and _CARD_WORDS.issuperset(lead):
            return "cvv"
        if form in _PIN_FORMS and not _NOT_CARD_PIN.intersection(lead):
            return "pin"
    return None
