"""Card data detection: PANs, magnetic-stripe tracks, EMV track 2 equivalent, CVV and PIN values.

`scan` returns the spans of a string that a masking guard must replace (`scan_many` the same for many
strings at once), `sensitive_key` names the JSON keys whose values are sensitive authentication data,
`may_contain` is the pre-filter and `is_pan` the PAN test (prefix, length, Luhn). Pure functions: no I/O,
no state but caches of what they work out.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Literal, NamedTuple, cast

from relay.masking.iin import MAX_LENGTH, MIN_LENGTH, RANGES

# How a scan works, cheapest step first (most text never gets past step 1):
#
# 1. Images. A PAN is written as a "chain": digit groups joined by single separators (space, dash, dot,
#    plus, Unicode spaces and dashes, %20, &nbsp;, ...), 12 digits or more. The text is encoded to one byte
#    per character (Latin-1, "?" for anything above U+00FF, so offsets stay the text's) and mapped twice
#    with `bytes.translate`: to a run image (can this character be part of a chain?), in which `bytes.find`
#    locates the runs of 12 or more such characters at C speed, skipping over letters; and to a key image:
#    "0" for a digit, the ASCII separators as they are, and for any other character only what the rules of
#    step 2 ask about a run's neighbours (hex letter, capital, track separator, "%"). Text with non-ASCII
#    digits takes the exact Unicode regex over the whole string instead.
# 2. Runs, read left to right, each chain from where the one before it (or its track) ends. A run's key is
#    its stretch of the key image with three characters before it and one after. Keys repeat (the same
#    layout of ids, dates, amounts or cards between the same kinds of neighbours), so what a key says is
#    worked out once, in plain Python, and then looked up: most runs end there (fewer than 12 digits, more
#    than 19 in a row). A run that is one chain as it stands (ids, a card in a table cell) is settled with
#    the prefix and length table (most ids fail it) and Luhn; a chain that no rule below can touch waits
#    for one Luhn check of all such chains at once (card-dense text has thousands). In a run that is not
#    one chain, a regex over its classes (brand's digit, other digit, separator) finds the chains, each
#    read then as a run of its own. A chain that is not a PAN as a whole, or that a rule below may apply
#    to, goes through the general reader, which splits it into groups and lets the rules pick the PANs; a
#    PAN followed by "=", "^" or "D" is checked for track 2, track 1 and EMV track 2 equivalent structure.
#    Runs with %XX escapes, &nbsp;-style or non-ASCII separators ("loose mode") are read with looser
#    regexes over their classes (with "%" and "&" too), and the exact chain regex over the text.
# 3. SAD keywords (CVV, CVC, CID, security code, card code, PIN, PIN block, ...) followed by a value: three
#    regexes over the lowered text, each starting with a literal (the image of step 1 lowered stands in
#    for the text where it reads the same). Skipped when the text has < 3 digits.
# 4. Text with \u0034-style escapes of digits is decoded first, and the spans are mapped back.
#
# `may_contain` is the same steps, stopping at the first finding (a long text's first KiB first: card-dense
# text has one there). `scan_many` reads many texts (the strings of a JSON message) as one, joined by a
# separator that no rule looks across, and hands each text its findings.
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
# Finding((start, end, kind, digits)) at C speed, for map() over many at once.
_pan_finding = cast(Callable[[tuple[int, int, str, str]], Finding], partial(tuple.__new__, Finding))


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
# The same keyed by ASCII bytes, with every 4-digit key (0: no brand's prefix): a lookup never misses.
_LEN4_BYTES = {f"{head:04d}".encode(): _LEN4.get(f"{head:04d}", 0) for head in range(10_000)}
_LEN6_BYTES = {key.encode(): lengths for key, lengths in _LEN6.items()}
_FIRST_DIGITS = "".join(sorted({key[0] for key in _LEN4}))
_FIRST_SET = frozenset(_FIRST_DIGITS)
_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")  # Luhn: 2*d with its digits summed


def _luhn(digits: str) -> bool:
    return _luhn_ok(digits.encode())


def _luhn_ok(raw: bytes) -> bool:
    # sum() over bytes of ASCII digits is the fastest digit sum CPython offers; 48 is ord("0").
    return (sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLE)) - 48 * len(raw)) % 10 == 0


_LUHN_AS_IS = bytes.maketrans(b"0123456789", bytes(range(10)))
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_LUHN_BLOCK = int.from_bytes(b"\x01" * 10, "little")  # 1 + 256 + ... + 256**9
_LUHN_PASSES = bytes(int(v % 10 == 0) for v in range(256))


def _luhn_many(numbers: list[bytes]) -> bytes:
    """Luhn checks of many strings of up to 20 ASCII digits at once: for each, 1 if it passes, else 0.

    Card-dense text has thousands of PANs, and a check each costs more than all of them at once. Each number
    is right-aligned in 20 bytes (leading zeros change no Luhn sum), so the digits Luhn doubles sit at even
    offsets of every block and the others at odd ones. Their values (doubled, with the digits of the double
    summed, or as they are) are added up as two big integers, a byte per digit pair (at most 18), and a
    multiplication by 1 + 256 + ... + 256**9 sums each block's 10 bytes into its last one (at most 180, so
    no carry reaches the next block)."""
    blocks = b"".join([number.rjust(20, b"0") for number in numbers])
    as_is = blocks[1::2].translate(_LUHN_AS_IS)
    doubled = blocks[0::2].translate(_LUHN_DOUBLED)
    total = int.from_bytes(as_is, "little") + int.from_bytes(doubled, "little")
    sums = (total * _LUHN_BLOCK).to_bytes(len(as_is) + 10, "little")[9 : len(as_is) : 10]
    return sums.translate(_LUHN_PASSES)


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


# --- step 1: the images -----------------------------------------------------------------------------

# Characters above U+00FF that str.lower() maps to ASCII letters, and whitespace above U+00FF: where a text
# has one, its Latin-1 image (with "?" for them) would not match the keyword regexes as the text does.
# (test_detect.py checks both lists against the Unicode database.)
_LOWER_TO_ASCII = "\u0130\u212a"
_WIDE_SPACES = (
    "\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_IMAGE_UNSAFE = re.compile("[" + _LOWER_TO_ASCII + _WIDE_SPACES + "]")
_LATIN1_SEPS = "".join(sorted(c for c in _SEP_CHARS if "\x80" <= c <= "\xff"))

# The run image: "0" for a character that can be part of a chain, "x" for any other. %XX and &...;
# separators are written as "0"s first (_zeros).
_RUN_TABLES = {
    u: bytes(ord("0") if chr(c) in "0123456789 .-+" or (u and chr(c) in "?" + _LATIN1_SEPS) else ord("x")
             for c in range(256))
    for u in (False, True)
}  # fmt: skip
_LONG_RUN = b"0" * MIN_LENGTH


def _key_table() -> bytes:
    # "0": a digit; the ASCII separators as they are; and for the neighbours of a run, what the rules of
    # step 2 ask about them: a: a-f but d, A: A-F but D, d and D (hex letters that may follow a track's
    # PAN), U: G-Z (what, with A-F and digits, may come before an IBAN's digits), =: "=" or "^" (may follow
    # a track's PAN), %: "%" (may end a %XX escape before the run), x: anything else. A run with any of
    # these but "0" and the separators in it is read in loose mode.
    table = bytearray(b"x" * 256)
    for chars, key in (("0123456789", "0"), ("abcef", "a"), ("ABCEF", "A"), ("GHIJKLMNOPQRSTUVWXYZ", "U"),
                       ("=^", "="), ("%", "%"), ("dD .-+", "")):  # fmt: skip
        for c in chars:
            table[ord(c)] = ord(key or c)
    return bytes(table)


_KEY_TABLE = _key_table()


def _class_table(uni_seps: bool, html: bool) -> bytes:
    # B: a digit a brand's prefix can start with, d: any other digit, space: a separator,
    # P: "%" (a %XX escape can separate groups or stand before one), A: "&" when the text has &nbsp;-style
    # separators, x: anything else. When the text has non-ASCII separators, the Latin-1 ones and "?" (which
    # stands for every character above U+00FF) are separators.
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
# The chains of a run of digits and ASCII separators that is not one chain as it stands: the classes follow
# the exact chain regex character for character, so a match IS a chain, greedy to its end.
_EXACT_CANDIDATE = re.compile(rb"B(?<![Bd]B)[Bd]{3}(?=[Bd ]{8})[Bd]*(?: [Bd]+)*")
# Where chains may start in a run read in loose mode: any separator character, any %XX escape and any
# short &...; entity separate groups, and the exact chain regex finds where each chain ends. (A lookahead of
# single-character repeats rejects short numbers before anything else is tried; a chain with fewer than 12
# digits can pass it, and the PAN rules drop it.)
_LOOSE_CANDIDATE = re.compile(rb"B(?:(?<![Bd]B)|(?<=P..B))[Bd]{3}(?:(?: ?|P..|A.{4,5})[Bd]){8}")
_HTML_SEPS = re.compile(rb"&(?:nbsp|#160|#[xX][aA]0|#32|#[xX]20);")
_ESCAPED_SEP = re.compile(rb"%2[0BbDdEe]")
_ASCII_BYTES = bytes(range(128))
_DIGIT_BYTES = b"0123456789"
_DIGIT = re.compile(rb"[0-9]")
_BRAND_DIGIT = re.compile(b"[" + _FIRST_DIGITS.encode() + b"]")
_FIRST_BYTES = frozenset(_FIRST_DIGITS.encode())
_ASCII_SEPS = b" .-+"
_SEPS_TO_SPACE = bytes.maketrans(b".-+", b"   ")


def _zeros(m: re.Match[bytes]) -> bytes:
    return b"0" * len(m[0])


class _Hot:
    """Step 1 over one text: its images, and which way step 2 reads it."""

    __slots__ = ("exact", "has_digits", "html", "image", "keys", "raw", "runs", "uni_seps")

    def __init__(
        self,
        runs: bytes | None,
        exact: bool,
        uni_seps: bool,
        has_digits: bool,
        image: bytes | None = None,
        raw: bytes = b"",
        keys: bytes = b"",
        html: bool = False,
    ) -> None:
        # The run image + "x"; b"" when no PAN can be in the text, None: the exact Unicode regex over it all.
        self.runs = runs
        self.exact = exact  # the text has no %XX escape, &nbsp;-style separator or non-ASCII separator
        self.uni_seps = uni_seps  # the text has non-ASCII separators
        self.html = html  # the text has &nbsp;-style separators
        self.has_digits = has_digits  # no digits, no keyword values either
        self.image = image  # one byte per character that, lowered, the keyword regexes read like the text
        self.raw = raw  # the text, one byte per character (Latin-1, "?" above U+00FF)
        self.keys = keys  # "xxx" + the key image + "x"


_UNICODE_PATH = _Hot(None, False, True, True)
_NO_DIGITS = _Hot(b"", True, False, False)  # fewer than 3 digits: no PAN, no CVV, no PIN
_FEW_DIGITS = _Hot(b"", True, False, True)  # fewer than 12 digits: no PAN, but maybe a CVV or PIN
_PROBE = 1024


def _hot(text: str) -> _Hot:
    """Step 1 over `text`: its images."""
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
    image = raw if plain else None
    if _BRAND_DIGIT.search(raw) is None:
        return _Hot(b"", True, uni_seps, _DIGIT.search(raw) is not None, image)
    html = b"&" in raw and _HTML_SEPS.search(raw) is not None
    escapes = b"%" in raw and _ESCAPED_SEP.search(raw) is not None
    chars = raw
    if escapes:
        chars = _ESCAPED_SEP.sub(_zeros, chars)
    if html:
        chars = _HTML_SEPS.sub(_zeros, chars)
    runs = b"".join((chars.translate(_RUN_TABLES[uni_seps]), b"x"))
    keys = b"".join((b"xxx", raw.translate(_KEY_TABLE), b"x"))
    exact = not uni_seps and not html and b"%" not in raw
    return _Hot(runs, exact, uni_seps, True, image, raw, keys, html)


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


# What a run's key says, worked out by _work_out_read: (start, end, digits, how). For a run that is one
# chain as it stands, `start` and `end` are where the chain starts and ends, counted from the start and the
# end of the run, `digits` its number of digits, and `how` is _CHAIN with any of the flags after it.
_SKIP, _LOOSE, _CANDIDATES = 0, -1, -2  # no PAN can be in the run; loose mode; _read_candidates
_CHAIN, _CONTIGUOUS, _QUIET, _SLOW = 1, 2, 4, 8
# _CONTIGUOUS: the chain is one group of digits. _QUIET: if it is a PAN as a whole, no rule that looks at
# its neighbours can apply. _SLOW: a track may follow it, it may be a phone number, or it is no PAN in
# groups as a whole (its first group has 12 digits or more, or it is a decimal number): _chain reads it.
_Read = tuple[int, int, int, int]
_READS: dict[bytes, _Read] = {}
_READS_KEPT = 8192  # keys remembered, of at most _KEY_KEPT bytes
_KEY_KEPT = 64
_ONE_CHAIN = re.compile(rb"[ .+\-]{0,2}(0000+(?:[ .+\-]0+)*)[ .+\-]{0,2}")
# A group of 4 digits or more, not right after a digit, that 12 digits or more start: as the chain regex
# starts a chain (but for the brand's digit).
_CHAIN_START = re.compile(rb"0(?<!00)000(?=(?:[ .+\-]?0){8})")
_CONTEXT_PREV_KEYS = frozenset(b"0aAdDU .-+")  # _CONTEXT_PREV, _CONTEXT_NEXT, _IBAN_BEFORE and
_CONTEXT_NEXT_KEYS = frozenset(b"0aAdD-")  # _TRACK_NEXT in the key image
_IBAN_BEFORE_KEYS = frozenset(b"0ADU")
_TRACK_NEXT_KEYS = frozenset(b"=dD")
_SEP_KEYS = frozenset(_ASCII_SEPS)


def _how_to_read(key: bytes) -> _Read:
    read = _work_out_read(key)
    if len(key) <= _KEY_KEPT and len(_READS) < _READS_KEPT:
        _READS[key] = read
    return read


def _work_out_read(key: bytes) -> _Read:
    run = key[3:-1]
    if run.translate(None, b"0 .-+") or b"%" in key[:3]:
        # Other characters than digits and ASCII separators, or right after a %XX escape (possible only in
        # a text with %XX escapes, &nbsp;-style or non-ASCII separators): loose mode, unless the digits and
        # those characters are fewer than 12.
        return (0, 0, 0, _LOOSE if len(run.translate(None, _ASCII_SEPS)) >= MIN_LENGTH else _SKIP)
    n = run.count(b"0")
    if n < MIN_LENGTH:
        return (0, 0, 0, _SKIP)  # dates, times, phone numbers: fewer than 12 digits
    # Digit groups with single separators, the first of 4 or more digits, between at most two separators
    # on either side (a card in a table cell, an id at the end of a sentence), are one chain.
    m = _ONE_CHAIN.fullmatch(run)
    if m is None:
        # Any other run is read chain by chain, if a chain of 12 digits or more can start in it.
        return (0, 0, 0, _CANDIDATES if _CHAIN_START.search(run) else _SKIP)
    chain = m[1]
    start, end = m.start(1), m.end(1)
    contiguous = chain.isdigit()
    prev, before, nxt = key[2 + start], key[1 + start], key[3 + end]
    track = nxt in _TRACK_NEXT_KEYS
    if contiguous and n > MAX_LENGTH and not track:
        return (0, 0, 0, _SKIP)  # an id: more than 19 digits hold no PAN
    how = _CHAIN
    if contiguous:
        how |= _CONTIGUOUS
    elif chain[:MIN_LENGTH].isdigit() or (len(chain) - n == 1 and b"." in chain):
        how |= _SLOW  # the first group has 12 digits or more; two groups joined by a dot: a decimal number
    if track or (prev in _SEP_KEYS and (prev == ord("+") or before == ord("0"))):
        how |= _SLOW  # a track; a phone number, a decimal number (only for a chain inside a run)
    quiet = nxt not in _CONTEXT_NEXT_KEYS and (
        prev not in _CONTEXT_PREV_KEYS or (prev == ord(" ") and before not in _IBAN_BEFORE_KEYS)
    )
    if quiet and (n > 13 or not contiguous):  # 12 or 13 digits may be a GS1 barcode
        how |= _QUIET
    return (start, end - len(run), n, how)


def _scan_chains(text: str, hot: _Hot, out: list[Finding], first: bool = False) -> None:
    """Step 2: the chains of `text` read, left to right, findings to `out` (empty before, sorted after);
    with `first`, it may stop at the first finding."""
    runs = hot.runs
    if runs is None:
        pos = 0
        search = _CHAIN_UNI.search
        while (m := search(text, pos)) is not None and not (first and out):
            pos = _chain_at(text, m.start(), _CHAIN_UNI, False, out)
        return
    raw, keys = hot.raw, hot.keys
    regex = _CHAIN_UNI if hot.uni_seps else _CHAIN_ASCII
    len4 = _LEN4_BYTES
    read_of = _READS.get
    append = out.append
    find = runs.find
    done = 0  # where the last chain or track ended: the next chain starts there or after
    quiet_starts: list[int] = []
    quiet_ends: list[int] = []
    quiet_digits: list[bytes] = []
    pos = 0
    while (i := find(_LONG_RUN, pos)) >= 0 and not (first and out):
        pos = find(b"x", i + MIN_LENGTH)  # the run image ends with an "x"
        key = keys[i : pos + 4]
        s, e, n, how = read_of(key) or _how_to_read(key)
        if how <= 0:
            if how == _CANDIDATES:
                done = _read_candidates(text, hot, i, pos, regex, done, out)
            elif how == _LOOSE:
                done = _read_loose(text, hot, i, pos, regex, done, out)
            continue
        s += i
        e += pos
        if how & _SLOW or s < done:
            if raw[s] in _FIRST_BYTES:  # a chain starts with a brand's digit
                done = _read_exact(text, hot, s, e, regex, done, out)
            elif not how & _CONTIGUOUS:
                done = _read_candidates(text, hot, i, pos, regex, done, out)
            continue
        # Prefix and length, then Luhn (as _luhn_ok computes it), settle most chains.
        digits = raw[s:e] if how & _CONTIGUOUS else raw[s:e].translate(None, _ASCII_SEPS)
        mask = len4[digits[:4]]
        if mask & 1:
            mask |= _LEN6_BYTES.get(digits[:6], 0)
        if (mask >> n) & 1:
            if how & _QUIET and not first:
                # A PAN if it passes Luhn, which _settle checks for all of these at once.
                quiet_starts.append(s)
                quiet_ends.append(e)
                quiet_digits.append(digits)
                continue
            if not (sum(digits[-1::-2]) + sum(digits[-2::-2].translate(_DOUBLE)) - 48 * n) % 10:
                # A PAN as a whole: unless no rule can apply, the rules that look at its neighbours decide.
                pan = digits.decode()
                if how & _QUIET or _pan_context_ok(text, s, e, pan, how & _CONTIGUOUS != 0):
                    append(_new_tuple(Finding, (s, e, "pan", pan)))
                elif not how & _CONTIGUOUS:
                    _chain(text, s, e, True, out)
                continue
        if not how & _CONTIGUOUS:  # a PAN may still be in some of the groups
            if raw[s] not in _FIRST_BYTES:
                done = _read_candidates(text, hot, i, pos, regex, done, out)
            elif _may_hold_pan(text, s, e):
                _chain(text, s, e, True, out)
    if quiet_digits:
        _settle(text, quiet_starts, quiet_ends, quiet_digits, out)


def _settle(text: str, starts: list[int], ends: list[int], numbers: list[bytes], out: list[Finding]) -> None:
    """Findings in the chains text[start:end] that are PANs if their digits, `numbers`, pass Luhn: checked
    all at once, they go to `out`, which is sorted again (they are no tracks: `done` never mattered)."""
    passed = _luhn_many(numbers)
    mixed = bool(out)
    pans = zip(starts, ends, itertools.repeat("pan"), map(bytes.decode, numbers))
    out.extend(map(_pan_finding, itertools.compress(pans, passed)))
    if passed.count(0):
        failed = itertools.compress(zip(starts, ends, numbers, strict=True), map(operator.not_, passed))
        for s, e, digits in failed:
            if e - s != len(digits) and _may_hold_pan(text, s, e):
                mixed = True
                _chain(text, s, e, True, out)  # a PAN may still be in some of the groups
    if mixed:
        out.sort()


def _read_candidates(
    text: str, hot: _Hot, i: int, pos: int, regex: re.Pattern[str], done: int, out: list[Finding]
) -> int:
    """Findings in the run text[i:pos] of digits and ASCII separators that is not one chain as it stands,
    or whose chain does not start with a brand's digit; returns where the last chain or track ends."""
    for m in _EXACT_CANDIDATE.finditer(hot.raw[i:pos].translate(_CLASS_TABLES[False, False])):
        done = _read_exact(text, hot, i + m.start(), i + m.end(), regex, done, out)
    return done


def _read_exact(
    text: str, hot: _Hot, s: int, e: int, regex: re.Pattern[str], done: int, out: list[Finding]
) -> int:
    """Findings in the chain text[s:e] of a run of digits and ASCII separators, starting with a brand's
    digit; returns where it ends. The chain's key (as if it were a run) says how to read it."""
    if s < done:
        # The chain starts inside the track before it: what follows the track may start another.
        m = regex.search(text, done, e) if e > done else None
        return done if m is None else max(done, _chain_at(text, m.start(), regex, True, out))
    key = hot.keys[s : e + 4]
    how = (_READS.get(key) or _how_to_read(key))[3]
    if how <= 0:
        return e  # fewer than 12 digits, or more than 19 in a row
    if how & _SLOW:
        if text[e : e + 1] in _TRACK_NEXT or _may_hold_pan(text, s, e):
            return _chain(text, s, e, True, out)
        return e
    pan = hot.raw[s:e].translate(None, _ASCII_SEPS).decode()
    if not is_pan(pan):
        if not how & _CONTIGUOUS and _may_hold_pan(text, s, e):
            _chain(text, s, e, True, out)  # a PAN may still be in some of the groups
    elif how & _QUIET:
        out.append(_new_tuple(Finding, (s, e, "pan", pan)))
    else:
        _chain(text, s, e, True, out)  # the rules that look at the neighbours decide
    return e


def _may_hold_pan(text: str, s: int, e: int) -> bool:
    """Whether digit groups of the chain text[s:e] (ASCII digits, single ASCII separators), one after the
    other from a group of 4 or more, pass is_pan: if none do, _chain finds no PAN in it."""
    groups = text[s:e].encode().translate(_SEPS_TO_SPACE).split(b" ")
    digits = b"".join(groups)
    ends = list(itertools.accumulate(map(len, groups)))
    start = 0
    for k, end in enumerate(ends):
        if end - start >= 4 and (mask := _LEN4_BYTES[digits[start : start + 4]]):
            if mask & 1:
                mask |= _LEN6_BYTES.get(digits[start : start + 6], 0)
            j = k
            while j < len(ends) and (n := ends[j] - start) <= MAX_LENGTH:
                if (mask >> n) & 1 and _luhn_ok(digits[start : ends[j]]):
                    return True
                j += 1
        start = end
    return False


def _read_loose(
    text: str, hot: _Hot, i: int, pos: int, regex: re.Pattern[str], done: int, out: list[Finding]
) -> int:
    """Findings in a run with %XX escapes, &nbsp;-style or non-ASCII separators; returns where the last
    chain or track ends."""
    base = max(0, i - 3)  # the candidate regex looks back at most 3 characters
    classes = hot.raw[base:pos].translate(_CLASS_TABLES[hot.uni_seps, hot.html])
    for c in _LOOSE_CANDIDATE.finditer(classes, i - base, pos - base):
        s, e = base + c.start(), base + c.end()
        if e <= done:
            continue
        p = s
        if p < done:
            # The candidate starts inside the chain (or track) before it, which may have taken the start of
            # another: the next chain starts after that one ends, as in the Unicode path.
            m = regex.search(text, done, min(len(text), e + 128))
            if m is None:
                continue
            p = m.start()
        end = _chain_at(text, p, regex, True, out)
        if not end:
            # The candidate regex is a superset of the exact one: a group may start a little further on (its
            # own candidate, if any, was taken by this one's).
            m = regex.search(text, p + 1, min(len(text), p + 128))
            end = 0 if m is None else _chain_at(text, m.start(), regex, True, out)
        done = max(done, end)
    return done


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
    """Pre-filter: False guarantees `scan(text) == []`. It stops at the first finding (on text without card
    data it costs what a scan does), and says True for any \\u-escaped digit without a look."""
    if "\\" in text and _ESCAPED_DIGIT.search(text):
        return True
    # A finding in the first KiB of a long text settles it without a pass over the rest (it may not be one
    # in the whole text, where the digits may run on: the answer is then a harmless "maybe").
    if len(text) > _PROBE and _chains_in(text[:_PROBE]):
        return True
    hot = _hot(text)
    if _chains_in(text, hot):
        return True
    return hot.has_digits and _any_keyword(text, _lowered(text, hot))


def _chains_in(text: str, hot: _Hot | None = None) -> bool:
    found: list[Finding] = []
    _scan_chains(text, _hot(text) if hot is None else hot, found, first=True)
    return bool(found)


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
