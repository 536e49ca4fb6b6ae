"""Card data detection: PANs, magnetic-stripe tracks, EMV track 2 equivalent, CVV and PIN values.

`scan` returns the spans of a string that a masking guard must replace (`scan_many` the same for many
strings at once), `sensitive_key` names the JSON keys whose values are sensitive authentication data,
`may_contain` is the cheap pre-filter and `is_pan` the PAN test (prefix, length, Luhn). Pure functions:
no state, no I/O.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
import unicodedata
from functools import lru_cache
from typing import Literal, NamedTuple

from relay.masking.iin import MAX_LENGTH, MIN_LENGTH, RANGES

# How a scan works, cheapest step first (most text never gets past step 1):
#
# 1. Runs. A PAN is written as a "chain": digit groups joined by single separators (space, dash, dot, plus,
#    Unicode spaces and dashes, %20, &nbsp;, ...), 12 digits or more. The text is encoded to one byte per
#    character (Latin-1, "?" for anything above U+00FF, so offsets stay the text's) and mapped twice with
#    `bytes.translate`: to a run image (can this character be part of a chain?), in which `bytes.find`
#    locates the runs of 12 or more such characters at C speed, skipping over letters; and to classes
#    (digit that can start a brand's prefix, other digit, separator, "%", "&", other). A run with fewer
#    than 12 digits is dropped; a run of digits, or of digit groups with single separators, is a chain as
#    it stands (ids, timestamps, cards); in other runs regexes over the classes find where chains may
#    start. That is a superset of what step 2 accepts, so `may_contain` uses it too. Text with non-ASCII
#    digits takes the exact Unicode regex over the whole string instead.
# 2. Chains are read left to right, each from where the one before it (or its track) ends. A chain that is
#    one run of digits or one PAN in groups is settled with the prefix, length and Luhn test first (most
#    ids fail it); any other is split into groups and the rules below pick the PANs. A PAN followed by
#    "=", "^" or "D" is checked for track 2, track 1 and EMV track 2 equivalent structure.
# 3. SAD keywords (CVV, CVC, CID, security code, card code, PIN, PIN block, ...) followed by a value: three
#    regexes over the lowered text, each starting with a literal (the image of step 1 lowered stands in
#    for the text where it reads the same). Skipped when the text has < 3 digits.
# 4. Text with \u0034-style escapes of digits is decoded first, and the spans are mapped back.
#
# `scan_many` reads many texts (the strings of a JSON message) as one, joined by a separator that no rule
# looks across, and hands each text its findings.
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


class Finding(NamedTuple):
    """One span to replace. A named tuple, not a frozen dataclass: card-dense text makes one per card, and
    a tuple is built in a third of the time (and unpacked at C speed by the masker)."""

    start: int  # span [start, end) in the input string to replace
    end: int
    kind: Kind
    digits: str  # pan / track kinds: the PAN's ASCII digits; "" for cvv / pin


_new_tuple = tuple.__new__


def _finding(start: int, end: int, kind: Kind, digits: str) -> Finding:
    # Finding(...) calls a generated __new__ written in Python; this is the same, at C speed.
    return _new_tuple(Finding, (start, end, kind, digits))


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
_LEN4_BYTES = {key.encode(): lengths for key, lengths in _LEN4.items()}
_LEN6_BYTES = {key.encode(): lengths for key, lengths in _LEN6.items()}
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


# --- step 1: runs -----------------------------------------------------------------------------------

# Characters above U+00FF that str.lower() maps to ASCII letters, and whitespace above U+00FF: where a text
# has one, its Latin-1 image (with "?" for them) would not match the keyword regexes as the text does.
# (test_detect.py checks both lists against the Unicode database.)
_LOWER_TO_ASCII = "\u0130\u212a"
_WIDE_SPACES = (
    "\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_IMAGE_UNSAFE = re.compile("[" + _LOWER_TO_ASCII + _WIDE_SPACES + "]")
_LATIN1_SEPS = "".join(sorted(c for c in _SEP_CHARS if "\x80" <= c <= "\xff"))


def _class_table(uni_seps: bool, html: bool) -> bytes:
    # B: a digit a brand's prefix can start with, d: any other digit, space: a separator, P: "%" (a %XX
    # escape can separate groups or stand before one), A: "&" when the text has &nbsp;-style separators,
    # x: anything else. When the text has non-ASCII separators, the Latin-1 ones and "?" (which stands for
    # every character above U+00FF) are separators.
    table = bytearray(b"x" * 256)
    for c in b"0123456789":
        table[c] = ord("B") if chr(c) in _FIRST_SET else ord("d")
    for c in b" .-+":
        table[c] = ord(" ")
    if uni_seps:
        for c in ("?" + _LATIN1_SEPS).encode("latin-1"):
            table[c] = ord(" ")
    table[ord("%")] = ord("P")
    if html:
        table[ord("&")] = ord("A")
    return bytes(table)


_CLASS_TABLES = {(u, h): _class_table(u, h) for u in (False, True) for h in (False, True)}
# The run image: "0" for a character that can be part of a chain, "x" for any other. %XX and &...;
# separators are written as "0"s first (_zeros).
_RUN_TABLES = {
    u: bytes(ord("0") if chr(c) in "0123456789 .-+" or (u and chr(c) in "?" + _LATIN1_SEPS) else ord("x")
             for c in range(256))
    for u in (False, True)
}  # fmt: skip
_LONG_RUN = b"0" * MIN_LENGTH
_ASCII_BYTES = bytes(range(128))
_DIGIT_BYTES = b"0123456789"
_ASCII_SEPS = b" .-+"
_ODD_TABLE = bytes(ord("0") if chr(c) in "0123456789 .-+" else ord("1") for c in range(256))
_TRACK_NEXT_BYTES = frozenset((b"=", b"^", b"D", b"d"))
_B = ord("B")
_SPACE = ord(" ")

# Where chains may start inside a run that is not one chain as it stands. Exact mode (no "%", no
# &nbsp;-style separator and no non-ASCII separator in the run): the classes follow the exact chain regex
# character for character, so a match IS a chain, greedy to its end. Loose mode: any separator character,
# any %XX escape and any short &...; entity separate groups too, and the exact regex finds where each
# chain ends. (A lookahead of single-character repeats rejects short numbers before anything else is
# tried; a chain with fewer than 12 digits can pass it, and the PAN rules drop it.)
_EXACT_CANDIDATE = re.compile(rb"B(?<![Bd]B)[Bd]{3}(?=[Bd ]{8})[Bd]*(?: [Bd]+)*")
_LOOSE_CANDIDATE = re.compile(rb"B(?:(?<![Bd]B)|(?<=P..B))[Bd]{3}(?:(?: ?|P..|A.{4,5})[Bd]){8}")
_HTML_SEPS = re.compile(rb"&(?:nbsp|#160|#[xX][aA]0|#32|#[xX]20);")
_ESCAPED_SEP = re.compile(rb"%2[0BbDdEe]")


def _zeros(m: re.Match[bytes]) -> bytes:
    return b"0" * len(m[0])


class _Hot:
    """Where chains may be, from step 1 over one text."""

    __slots__ = ("exact", "has_digits", "image", "spans", "uni_seps")

    def __init__(
        self,
        spans: list[tuple[int, int, bool]] | None,
        exact: bool,
        uni_seps: bool,
        has_digits: bool,
        image: bytes | None = None,
    ) -> None:
        # (start, end, exact) of candidate chains; None: the exact Unicode regex over it all. An exact span
        # is a chain; of the others only the start counts, and the exact chain regex finds the end.
        self.spans = spans
        self.exact = exact  # the text has no %XX escape, &nbsp;-style separator or non-ASCII separator
        self.uni_seps = uni_seps  # the text has non-ASCII separators
        self.has_digits = has_digits  # no digits, no keyword values either
        self.image = image  # one byte per character that, lowered, the keyword regexes read like the text


_UNICODE_PATH = _Hot(None, False, True, True)
_NO_DIGITS = _Hot([], True, False, False)  # fewer than 3 digits: no PAN, no CVV, no PIN
_FEW_DIGITS = _Hot([], True, False, True)  # fewer than 12 digits: no PAN, but maybe a CVV or PIN
_PROBE = 4096


def _hot(text: str, first: bool = False) -> _Hot:
    """Step 1 over `text`; with `first`, it may stop at the first run with a candidate."""
    uni_seps = False
    plain = True  # the image, lowered, reads like the lowered text to the keyword regexes
    if text.isascii():
        raw = text.encode("ascii")
        if len(raw) < 256:  # short strings (most JSON values): count the digits first, it is cheap
            digits = len(raw) - len(raw.translate(None, _DIGIT_BYTES))
            if digits < 12:
                return _NO_DIGITS if digits < 3 else _FEW_DIGITS
    else:
        # One byte per character, so that offsets in the image are offsets in the text: "?" stands for
        # every character above U+00FF.
        raw = text.encode("latin-1", "replace")
        utf8 = text.encode("utf-8", "surrogatepass")
        others = utf8.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")
        if _NON_ASCII_DIGIT.search(others):
            return _UNICODE_PATH
        uni_seps = _NON_ASCII_SEP.search(others) is not None
        plain = _IMAGE_UNSAFE.search(others) is None
    html = b"&" in raw and _HTML_SEPS.search(raw) is not None
    classes = b"x" + raw.translate(_CLASS_TABLES[uni_seps, html])
    image = raw if plain else None
    if b"B" not in classes:
        return _Hot([], True, uni_seps, b"d" in classes, image)
    exact = not uni_seps and not html and b"P" not in classes
    chars = raw
    if b"P" in classes:
        chars = _ESCAPED_SEP.sub(_zeros, chars)
    if html:
        chars = _HTML_SEPS.sub(_zeros, chars)
    runs = chars.translate(_RUN_TABLES[uni_seps])
    odd = b"" if exact else raw.translate(_ODD_TABLE)  # "1": any character but a digit or ASCII separator
    find = runs.find
    size = len(runs)
    spans: list[tuple[int, int, bool]] = []
    pos = 0
    while (i := find(_LONG_RUN, pos)) >= 0 and not (first and spans):
        pos = find(b"x", i + MIN_LENGTH)
        if pos < 0:
            pos = size
        seps = classes.count(b" ", i + 1, pos + 1)
        if pos - i - seps < MIN_LENGTH:
            continue  # dates, times, phone numbers: fewer than 12 digits
        # A run of digits and ASCII separators only, not right after a %XX escape, reads the same in both
        # modes: in any text it gets the exact mode's handling.
        plain = exact or (odd.find(b"1", i, pos) < 0 and classes.find(b"P", max(0, i - 2), i + 1) < 0)
        if not plain:
            found = _LOOSE_CANDIDATE.finditer(classes, i + 1, pos + 1)
            spans += [(m.start() - 1, m.end() - 1, False) for m in found]  # -1: classes has an extra "x"
            continue
        if not seps:
            # One run of digits (ids, timestamps, cards): a chain if the first is a "B"; with more than 19
            # digits it holds no PAN, but may start a track.
            if classes[i + 1] == _B and (pos - i <= MAX_LENGTH or raw[pos : pos + 1] in _TRACK_NEXT_BYTES):
                spans.append((i, pos, True))
            continue
        # Digit groups with single separators, the first of 4 or more digits from a "B", between at most two
        # separators on either side (a card in a table cell, an id at the end of a sentence), are one chain.
        start = i + (classes[i + 1] == _SPACE)
        start += classes[start + 1] == _SPACE
        end = pos - (classes[pos] == _SPACE)
        end -= classes[end] == _SPACE
        if (
            classes[start + 1] == _B
            and classes[end] != _SPACE
            and classes.find(b" ", start + 1, start + 5) < 0
            and classes.find(b"  ", start + 1, end + 1) < 0
        ):
            spans.append((start, end, True))
        else:
            found = _EXACT_CANDIDATE.finditer(classes, i + 1, pos + 1)
            spans += [(m.start() - 1, m.end() - 1, True) for m in found]
    return _Hot(spans, exact, uni_seps, True, image)


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
    chunk = text[s:e]
    if chunk.isdecimal() and text[e : e + 1] not in _TRACK_NEXT:
        # One run of digits, most often an id: first the test that rejects most of them.
        digits = chunk if ascii_text else chunk.translate(_TO_ASCII)
        n = len(digits)
        mask = _LEN4.get(digits[:4], 0) if n <= MAX_LENGTH else 0
        if mask & 1:
            mask |= _LEN6.get(digits[:6], 0)
        if not (mask >> n) & 1:
            return e
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
            pos = _chain_at(text, m.start(), _CHAIN_UNI, False, out)
        return
    regex = _CHAIN_UNI if hot.uni_seps else _CHAIN_ASCII
    len4 = _LEN4_BYTES.get
    append = out.append
    done = 0
    for s, e, exact in spans:
        if not exact:
            if e <= done:
                continue
            p = s
            if p < done:
                # The candidate starts inside the chain (or track) before it, which may have taken the start
                # of another: the next chain starts after that one ends, as in the Unicode path.
                m = regex.search(text, done, min(len(text), e + 128))
                if m is None:
                    continue
                p = m.start()
            end = _chain_at(text, p, regex, True, out)
            if not end:
                # The hot regex is a superset of the exact one: a group may start a little further on (its
                # own hot match, if any, was taken by this one's).
                m = regex.search(text, p + 1, min(len(text), p + 128))
                end = 0 if m is None else _chain_at(text, m.start(), regex, True, out)
            done = max(done, end)
            continue
        if s < done:
            # The chain starts inside the track before it: what follows the track may start another.
            m = regex.search(text, done, e) if e > done else None
            if m is not None:
                done = max(done, _chain_at(text, m.start(), regex, True, out))
            continue
        # Most chains are one run of digits (ids in text without card data, cards in card-dense text) or
        # one PAN in groups: both are settled here with _chain's rules for them (prefix, length and Luhn
        # first, the context only for a PAN). Tracks, chains after "+" or a decimal point, and groups that
        # are not one PAN as a whole go through _chain.
        done = e
        nxt = text[e : e + 1]
        if nxt in _TRACK_NEXT:
            done = _chain(text, s, e, True, out)
            continue
        chunk = text[s:e]
        contiguous = chunk.isdecimal()
        raw = chunk.encode() if contiguous else chunk.encode().translate(None, _ASCII_SEPS)
        n = len(raw)
        mask = len4(raw[:4], 0) if n <= MAX_LENGTH else 0
        if mask & 1:
            mask |= _LEN6_BYTES.get(raw[:6], 0)
        # Prefix and length, then Luhn (as _luhn computes it).
        if not (mask >> n) & 1 or (sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLE)) - 48 * n) % 10:
            if not contiguous:
                _chain(text, s, e, True, out)  # a PAN may still be in some of the groups
            continue
        prev = text[s - 1] if s else ""
        before = text[s - 2 : s - 1] if s > 1 else ""
        if prev in _SEP_CHARS and (prev == "+" or before.isdecimal()):
            _chain(text, s, e, True, out)  # the phone number and decimal number rules
            continue
        # No exclusion can apply (as _pan_context_ok would find, slower) with these neighbours.
        quiet = nxt not in _CONTEXT_NEXT and (
            prev not in _CONTEXT_PREV or (prev == " " and before not in _IBAN_BEFORE)
        )
        if contiguous:
            if (n > 13 and quiet) or _pan_context_ok(text, s, e, chunk, True):
                append(_finding(s, e, "pan", chunk))
            continue
        digits = raw.decode()
        if (
            not chunk[:MIN_LENGTH].isdecimal()  # the first group has fewer than 12 digits
            and not (len(chunk) - n == 1 and "." in chunk)  # not a decimal number
            and (quiet or _pan_context_ok(text, s, e, digits, False))
        ):
            append(_finding(s, e, "pan", digits))
        else:
            _chain(text, s, e, True, out)


def _chain_at(text: str, p: int, regex: re.Pattern[str], ascii_digits: bool, out: list[Finding]) -> int:
    """Findings in the chain that `regex` matches at `p`, a %XX escape right before it read first. Returns
    the chain's end (as _chain does), or 0 if no chain starts at `p`."""
    end = _chain_after_escape(text, p, regex, ascii_digits, out)
    if end:
        return end
    m = regex.match(text, p)
    return 0 if m is None else _chain(text, p, m.end(), ascii_digits, out)


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
# ("spin", "mycvv"). Every value is the named group "v", "w" or "y". (The "c" regex first looks at the
# letter after the "c": that rejects most of the many c's in a text faster than the lookbehind does.)
_KW_C = re.compile(
    r"c(?=[vasi])(?<![a-z0-9]c)(?:(?:v(?:[vcnd]2?|2)|av2|sc|(?P<cid>id))"
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


def _lowered(text: str, hot: _Hot) -> str:
    # The image lowered is 2 to 8 times faster to make than _lower(text) on non-ASCII text.
    return _lower(text) if hot.image is None else hot.image.lower().decode("latin-1")


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
        _scan_keywords(text, _lowered(text, hot), out)
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


# Between two texts of scan_many: no chain, track, keyword gap or escape crosses a newline followed by NUL
# (a newline ends keyword gaps and HTML tags; NUL is in no class), and both read as "no digit, no letter"
# to the rules that look at a finding's neighbours, as the start or end of a text does.
_JOINER = "\n\x00"


def scan_many(texts: list[str]) -> dict[int, list[Finding]]:
    """`scan` of each text, keyed by its index; texts without findings are left out.

    The texts are scanned as one, joined: for the thousands of short strings of a JSON message that is a
    fraction of the cost of a scan each. A text with escaped digits (step 4) or non-ASCII digits (which
    take the Unicode path) is scanned on its own, so that it cannot change how the others are read.
    """
    joined = _JOINER.join(texts)
    marks = _read_alone(joined)
    alone = {bisect.bisect_right(_ends(texts), m.start()) for m in marks} if marks else set()
    if alone:
        texts_in = ["" if i in alone else t for i, t in enumerate(texts)]
        joined = _JOINER.join(texts_in)
    found: dict[int, list[Finding]] = {}
    findings = _scan_plain(joined)
    if findings:
        ends = _ends(texts_in if alone else texts)
        for f in findings:
            i = bisect.bisect_right(ends, f.start)
            if f.kind in ("cvv", "pin") and not _hot(texts[i]).has_digits:
                continue  # scan(texts[i]) does not look for keywords: too few digits
            base = ends[i] - len(texts[i])
            found.setdefault(i, []).append(_finding(f.start - base, f.end - base, f.kind, f.digits))
    for i in sorted(alone):
        if findings := scan(texts[i]):
            found[i] = findings
    return found


def _ends(texts: list[str]) -> list[int]:
    """Where each text ends in the texts joined."""
    return list(map(operator.add, itertools.accumulate(map(len, texts)), range(0, 2 * len(texts), 2)))


def _read_alone(joined: str) -> list[re.Match[str]]:
    """Escaped digits and non-ASCII digits in `joined`: the texts that have them are scanned on their own."""
    marks = list(_ESCAPED_DIGIT.finditer(joined)) if "\\" in joined else []
    if not joined.isascii():
        others = joined.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
        if _NON_ASCII_DIGIT.search(others.decode("utf-8", "surrogatepass")):
            marks += _NON_ASCII_DIGIT.finditer(joined)
    return marks


def may_contain(text: str) -> bool:
    """Cheap, conservative pre-filter: False guarantees `scan(text) == []`."""
    if "\\" in text and _ESCAPED_DIGIT.search(text):
        return True
    # A candidate in the first few KiB of a long text settles it without a pass over the rest (a candidate
    # in a prefix is one in the whole text too, where the mode can only be looser).
    if len(text) > _PROBE and _hot(text[:_PROBE], first=True).spans:
        return True
    hot = _hot(text, first=True)
    if hot.spans is None:
        if _CHAIN_UNI.search(text):
            return True
    elif hot.spans:
        return True
    return hot.has_digits and _any_keyword(text, _lowered(text, hot))


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
