"""relay.masking.detect: card numbers, tracks and SAD values are found however they are written; ids,
phone numbers, IBANs, hashes, amounts and masked values are left alone; the pre-filter never hides one."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from relay.masking import detect, iin
from relay.masking.detect import Finding, _hot, is_pan, may_contain, scan, scan_many, sensitive_key
from tests.masking.corpus import (
    ADYEN,
    BENIGN_CORPUS,
    BRAINTREE,
    CARD_CORPUS,
    DIGIT_ZEROS,
    PUBLISHED,
    SEPARATORS,
    STRIPE,
    generated_pans,
    grouped,
    gs1_ok,
    iban_with_check,
    in_script,
    json_escaped,
    labels,
    luhn_complete,
    luhn_ok,
    usual_grouping,
)

PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spans_ok(text: str, findings: list[Finding]) -> bool:
    end = 0
    for f in findings:
        if not (end <= f.start < f.end <= len(text)):
            return False
        end = f.end
    return True


def ascii_digits(span: str) -> str:
    """The PAN digits in a span: digits of %XX escapes and &#NNN; entities are not PAN digits."""
    span = re.sub(r"%[0-9A-Fa-f]{2}|&#?[0-9A-Za-z]+;", " ", span)
    return "".join(str(unicodedata.digit(c)) for c in span if c.isdecimal())


# --- the table and the corpus --------------------------------------------------------------------------


def test_published_test_cards_are_luhn_valid_brand_numbers() -> None:
    assert len(STRIPE) >= 20 and len(ADYEN) >= 30 and len(BRAINTREE) >= 12
    for pan in PUBLISHED:
        assert luhn_ok(pan), pan
        assert is_pan(pan), pan


def _reference_is_pan(digits: str) -> bool:
    """is_pan written the slow, obvious way straight from iin.RANGES."""
    if not (12 <= len(digits) <= 19) or not luhn_ok(digits):
        return False
    for r in iin.RANGES:
        head = digits[: len(r.low)]
        if int(r.low) <= int(head) <= int(r.high) and len(digits) in r.lengths:
            return True
    return False


def test_iin_table_is_well_formed() -> None:
    assert iin.MIN_LENGTH == 12 and iin.MAX_LENGTH == 19
    for r in iin.RANGES:
        assert r.low.isdecimal() and r.high.isdecimal() and len(r.low) == len(r.high), r
        assert int(r.low) <= int(r.high), r
        assert r.lengths and all(12 <= n <= 19 for n in r.lengths), r
    brands = {r.brand for r in iin.RANGES}
    assert brands == {"visa", "mastercard", "amex", "discover", "jcb", "unionpay", "diners", "maestro"}


def test_is_pan_agrees_with_the_table_on_random_numbers() -> None:
    rng = random.Random(3)
    checked = valid = 0
    for _ in range(20000):
        length = rng.randint(11, 20)
        digits = luhn_complete("".join(rng.choice("0123456789") for _ in range(length - 1)))
        if rng.random() < 0.3:  # a wrong check digit now and then
            digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        expected = _reference_is_pan(digits)
        assert is_pan(digits) == expected, digits
        checked += 1
        valid += expected
    assert valid > 1000 and checked - valid > 1000  # both outcomes were exercised


def test_corpus_sizes() -> None:
    assert len(CARD_CORPUS) > 3000
    assert len(BENIGN_CORPUS) > 500
    assert len(generated_pans()) > 150


def test_card_corpus_is_found() -> None:
    failures = []
    for text, expected in CARD_CORPUS:
        got = scan(text)
        if labels(got) != expected or not spans_ok(text, got) or not may_contain(text):
            failures.append((text, expected, labels(got)))
    assert not failures, f"{len(failures)} of {len(CARD_CORPUS)} failed, first: {failures[:5]}"


def test_card_corpus_spans_cover_the_digits_and_nothing_around_them() -> None:
    for text, _ in CARD_CORPUS:
        if "\\u" in text:
            continue  # escaped digits: see test_json_escaped_digits
        for f in scan(text):
            span = text[f.start : f.end]
            if f.kind == "pan":
                merged = text == "3000 4111 1111 1111 1111"  # see test_overlapping_candidates_merge...
                assert ascii_digits(span) == f.digits or (merged and ascii_digits(span).endswith(f.digits)), (
                    span
                )
                assert span[0].isdecimal() and span[-1].isdecimal(), (text, span)
            elif f.kind in ("track1", "track2", "emv_track2"):
                assert span.startswith(("%B", "B", ";", f.digits)), (text, span)
                assert f.digits in span and span[-1] in "?0123456789ABCDEFabcdef", (text, span)
            else:
                assert f.digits == "" and span.replace(" ", "").isalnum(), (text, span)


def test_benign_corpus_is_left_alone() -> None:
    failures = [(text, [(f.kind, text[f.start : f.end]) for f in scan(text)]) for text in BENIGN_CORPUS]
    failures = [f for f in failures if f[1]]
    assert not failures, f"{len(failures)} of {len(BENIGN_CORPUS)} benign texts had findings: {failures[:5]}"


def test_whole_corpora_joined_into_one_text() -> None:
    # The same findings when everything is one big text (exercises the dense and sparse byte-class passes).
    texts = [t for t, _ in CARD_CORPUS[::7]] + BENIGN_CORPUS
    random.Random(1).shuffle(texts)
    joined = "\n".join(texts)
    expected = [label for t in texts for label in labels(scan(t))]
    found = scan(joined)
    assert labels(found) == expected
    assert spans_ok(joined, found)


@pytest.mark.parametrize(
    ("extra", "exact"),
    [
        ("", True),
        ("q=card%204111%201111%201111%201111", False),
        ("\u00e9t\u00e9 4111\u00a01111\u00a01111\u00a01111", False),
        ("Stra\u00dfe 4111 1111 1111 1111", True),
    ],
)
def test_long_texts_lose_no_card_between_blocks(extra: str, exact: bool) -> None:
    # Long texts with cards, ids and digit runs all over; "%" and non-ASCII separators switch the byte-class
    # pass to its loose mode, non-ASCII letters to its Latin-1 image.
    rng = random.Random(5)
    pool = [t for t, _ in CARD_CORPUS + [(b, []) for b in BENIGN_CORPUS] if _block_path_text(t, exact)]
    texts = [extra]
    while sum(map(len, texts)) < 300_000:
        texts.append(rng.choice(pool))
        if rng.random() < 0.05:
            texts.append("1234567890 " * rng.randint(50, 500))  # dense digits, no card
    joined = "\n".join(texts)
    hot = _hot(joined)
    assert hot.runs is not None and hot.exact == exact  # the path this test is about
    found = scan(joined)
    assert labels(found) == [label for t in texts for label in labels(scan(t))]
    assert spans_ok(joined, found)
    assert len(found) > 500


def _block_path_text(text: str, exact: bool) -> bool:
    if "\\" in text or "&" in text or any(c.isdecimal() and not c.isascii() for c in text):
        return False  # escapes, HTML entities, Unicode digits: other paths
    return not exact or ("%" not in text and text.isascii())


# --- decisions, one test each ----------------------------------------------------------------------------


def test_pan_span_covers_digits_and_separators_only() -> None:
    text = "card: 4111 1111 1111 1111, exp 12/29"
    [f] = scan(text)
    assert text[f.start : f.end] == "4111 1111 1111 1111"
    assert f == Finding(6, 25, "pan", "4111111111111111")


def test_csv_with_two_cards_and_runs_longer_than_19_digits() -> None:
    assert labels(scan("4111111111111111,4242424242424242")) == ["4111111111111111", "4242424242424242"]
    assert scan("id=41111111111111111234") == []  # 20 digits: an id, no card is cut out of it
    assert scan("4111111111111111 4242424242424242") != []
    assert labels(scan("4111111111111111 4242424242424242")) == ["4111111111111111", "4242424242424242"]


def test_contiguous_card_followed_by_a_short_group_is_taken_alone() -> None:
    for tail in (" 12/29", " 123", " 1229"):
        [f] = scan("4111111111111111" + tail)
        assert (f.start, f.end) == (0, 16)


def test_overlapping_candidates_merge_so_no_digit_of_the_card_stays_visible() -> None:
    text = "3000 4111 1111 1111 1111"  # "3000 4111 1111 1111" is a Diners number too
    assert is_pan("3000411111111111")
    [f] = scan(text)
    assert (f.start, f.end, f.digits) == (0, len(text), "4111111111111111")


def test_decimal_numbers_are_not_cards() -> None:
    frac = "4111111111111111"
    assert scan(f"0.{frac}") == []
    assert scan(f"score 7.{frac} ok") == []
    decimal = luhn_complete("411112345678901")
    assert is_pan(decimal) and scan(f"{decimal[:4]}.{decimal[4:]}") == []  # two groups joined by a dot
    assert labels(scan("4111.1111.1111.1111")) == [frac]  # three dots: a dotted card number


def test_phone_numbers_introduced_by_plus_are_not_cards() -> None:
    number = luhn_complete("493012345678")
    assert is_pan(number)
    assert scan(f"+{number}") == []
    assert scan(f"call +49 {number[2:]}") == []
    assert labels(scan(f"tel {number}")) == [number]  # without the plus it could be a card
    maestro = luhn_complete("67591234567")
    assert is_pan(maestro)
    spaced = f"{maestro[:4]} {maestro[4:8]} {maestro[8:]}"
    assert scan(f"+1 {spaced}") == []  # the chain starts at "+1": 13 digits, a phone number
    assert labels(scan(f"ref 1 {spaced}")) == [maestro]
    assert labels(scan("+49 4111 1111 1111 1111")) == ["4111111111111111"]  # 18 digits: too long for E.164


def test_gs1_barcodes_of_12_and_13_digits_are_not_cards() -> None:
    rng = random.Random(11)
    seen = 0
    while seen < 20:
        n = luhn_complete("40" + "".join(rng.choice("0123456789") for _ in range(10)))
        if is_pan(n) and gs1_ok(n):
            assert scan(f"EAN {n}") == []
            assert labels(scan(f"EAN {n[:4]} {n[4:8]} {n[8:]}")) == [n]  # barcodes are not grouped
            seen += 1


def test_hex_strings_hashes_uuids_and_ibans_are_left_alone() -> None:
    assert scan("sha ab4111111111111111cd") == []
    assert scan("sha " + "f" * 10 + "4111111111111111" + "e" * 6) == []  # a 32-character hex token
    assert scan("id 4111111111111111e") == []  # all hex, 17 characters: an id, not a card glued to "e"
    assert labels(scan("x4111111111111111y")) == ["4111111111111111"]  # not hex letters
    assert labels(scan("card:4111111111111111exp")) == ["4111111111111111"]
    assert labels(scan("q=%3A4111111111111111")) == ["4111111111111111"]  # %3A is an escape, not hex
    segment = luhn_complete("60110000000")
    assert is_pan(segment) and labels(scan(segment)) == [segment]
    assert scan(f"00000000-0000-4000-8000-{segment}") == []
    iban = iban_with_check("DE", "411111111111111111")
    assert scan(" ".join(iban[i : i + 4] for i in range(0, 22, 4))) == []
    assert labels(scan("4111 1111 1111 1111 11")) == ["4111111111111111"]  # the same digits without the IBAN
    assert labels(scan("DE 4111 1111 1111 1111")) == ["4111111111111111"]


def test_unicode_digits_are_normalised_and_the_span_is_the_original_text() -> None:
    for zero in DIGIT_ZEROS.values():
        text = "PAN " + in_script("4111 1111 1111 1111", zero) + " ok"
        [f] = scan(text)
        assert f.digits == "4111111111111111"
        assert (f.start, f.end) == (4, 4 + 19)


def test_unicode_spaces_and_dashes_between_groups() -> None:
    for name, sep in SEPARATORS.items():
        text = f"card {sep.join(['4111', '1111', '1111', '1111'])} exp"
        [f] = scan(text)
        assert text[f.start : f.end] == sep.join(["4111", "1111", "1111", "1111"]), name


def test_json_escaped_digits() -> None:
    text = '{"note": "' + json_escaped("paid with 4111 1111 1111 1111 ok") + '"}'
    [f] = scan(text)
    assert f.digits == "4111111111111111"
    assert text[f.start : f.end] == json_escaped("4111 1111 1111 1111")
    # Escaped again (JSON text inside a JSON string), and mixed with plain digits.
    text = "\\\\u0034\\\\u0031" + "11111111111111"
    [f] = scan(text)
    assert (f.start, f.end, f.digits) == (0, len(text), "4111111111111111")
    text = "cvv \\u0031\\u0032\\u0033 then 4242424242424242"
    assert [(f.kind, text[f.start : f.end]) for f in scan(text)] == [
        ("cvv", "\\u0031\\u0032\\u0033"),
        ("pan", "4242424242424242"),
    ]


def test_a_card_right_after_percent_or_ampersand_is_found_among_many_digits() -> None:
    # "%30" could be an escape: read as one first, then (finding nothing) as digits. Digit-dense text once
    # took a shortcut past both readings, and past a card right after "&".
    digits = " 22 33 44 55 66 77 88 99" * 3
    assert labels(scan("ab %30200000000000 xx" + digits)) == ["30200000000000"]
    assert labels(scan("x&nbsp;y &4111111111111111" + digits)) == ["4111111111111111"]
    assert labels(scan("q=card%204111%201111%201111%201111" + digits)) == ["4111111111111111"]


def test_a_character_that_only_may_be_a_separator_hides_no_card() -> None:
    # In text with non-ASCII separators any non-ASCII character may be one, until the exact regex reads it;
    # the chain it seemed to join ("3782\u00e94111...") must not swallow the card that starts after it.
    for glue in ("\u00e9", "?", "\u4e00"):
        text = f"-30200000000000\u00ad3782{glue}4111111111111111 x"
        assert labels(scan(text)) == ["30200000000000", "4111111111111111"], glue


def test_a_card_after_a_track_is_found() -> None:
    text = "4111111111111111=2912101000001 5555 5555 5555 4444"
    assert [(f.kind, f.digits) for f in scan(text)] == [("track2", "4111111111111111"), ("pan", "5555555555554444")]


def test_latin1_image_exceptions_match_the_unicode_database() -> None:
    # The keyword regexes read the text's Latin-1 image, lowered, unless the text has one of these.
    wide = "".join(re.findall(r"\s", "".join(map(chr, range(0x100, 0x110000)))))
    assert set(detect._WIDE_SPACES) == set(wide)
    lower = {chr(c) for c in range(0x80, 0x110000) if any(ch.isascii() for ch in chr(c).lower())}
    assert set(detect._LOWER_TO_ASCII) == lower


def test_tracks_are_one_finding_covering_the_whole_track() -> None:
    t1 = "%B4111111111111111^DOE/JOHN^29121010000000000000?"
    t2 = ";4111111111111111=29121010000012300000?"
    for text, kind in ((t1, "track1"), (t2, "track2")):
        [f] = scan(f"swipe {text} done")
        assert (f.kind, f.digits, f.start, f.end) == (kind, "4111111111111111", 6, 6 + len(text))
    [f] = scan("4111111111111111=29121010000012300000")
    assert (f.kind, f.start, f.end) == ("track2", 0, 37)
    emv = "4111111111111111D29121010000012300000F"
    [f] = scan(f"57 13 {emv}")
    assert (f.kind, f.start, f.end) == ("emv_track2", 6, 6 + len(emv))
    [f] = scan(f"5713{emv}")  # TLV header glued to the data: the span starts at the PAN
    assert (f.kind, f.start, f.digits) == ("emv_track2", 4, "4111111111111111")
    # Without the field structure it is a PAN, not a track.
    assert labels(scan("4111111111111111=x")) == ["4111111111111111"]
    assert labels(scan("4111111111111111^NAME^")) == ["4111111111111111"]
    assert labels(scan("4111111111111111D12x")) == ["4111111111111111"]
    assert scan("4111111111111111D12") == []  # all hex, 16+ characters: read as a hex string


def test_keyword_values_only_the_value_is_reported() -> None:
    cases = {
        "CVV: 123": "123",
        "cvc=4567": "4567",
        "security code 123": "123",
        "PIN: 1234": "1234",
        "pin block: 0412AC89ABCDEF67": "0412AC89ABCDEF67",
        '{"card": {"cvc": "737"}}': "737",
        "CVV is 123": "123",
        "PIN code: 1234": "1234",
    }
    for text, value in cases.items():
        [f] = scan(text)
        assert text[f.start : f.end] == value and f.digits == "", text
        assert (
            text[: f.start].rstrip(' :="is').lower().endswith(("cvv", "cvc", "code", "pin", "block", "is"))
        ), text


def test_keyword_lookalikes_are_left_alone() -> None:
    for text in ("cvc_check: pass", "Pincode: 560001", "PIN code 560001", "spinner 1234", "opinion 4321",
                 "cid=1234", "CVV: 12345", "pinned 1234", "shipping 123", "pin 12"):  # fmt: skip
        assert scan(text) == [], text
    assert labels(scan("CID 1234")) == ["cvv"]  # upper case CID is Amex's card identification number


def test_card_in_a_keyword_value_wins_over_the_keyword() -> None:
    # "pin: <16 digits>" could be a PIN block, but a valid card number is reported (and masked) as a PAN.
    assert labels(scan("pin: 4111111111111111")) == ["4111111111111111"]
    assert labels(scan("CVV: 4111 1111 1111 1111")) == ["4111111111111111"]


def test_may_contain_is_false_for_plain_text_and_true_for_each_kind() -> None:
    assert not may_contain("")
    assert not may_contain("hello world, no numbers here")
    assert not may_contain("order 1732406400000 paid 1,234.50 EUR on 2024-11-24")
    for text, expected in CARD_CORPUS[::50]:
        assert may_contain(text) == bool(expected), text


# --- JSON keys -------------------------------------------------------------------------------------------

SENSITIVE_KEYS = {
    "cvv": "cvv", "CVV": "cvv", "cvv2": "cvv", "CVV2": "cvv", "cvc": "cvv", "card_cvc": "cvv",
    "cardCvc": "cvv", "card-cvv": "cvv", "securityCode": "cvv", "security_code": "cvv",
    "SECURITY_CODE": "cvv",
    "cardVerificationValue": "cvv", "card_verification_code": "cvv", "cvvCode": "cvv", "cvc_number": "cvv",
    "cvNumber": "cvv", "cardCode": "cvv", "creditCardCode": "cvv", "cardCid": "cvv", "amex_cid": "cvv",
    "encryptedSecurityCode": "cvv", "csc": "cvv", "cav2": "cvv", "card.cvv": "cvv", "cvv_encrypted": "cvv",
    "securityCodeRaw": "cvv", "credit_card_verification_value": "cvv", "cvv_no": "cvv",
    "pin": "pin", "PIN": "pin", "pinBlock": "pin", "pin_block": "pin", "PIN_BLOCK": "pin", "PINBlock": "pin",
    "encryptedPinBlock": "pin", "card_pin": "pin", "pinNumber": "pin", "atmPin": "pin",
    "pinBlockEncrypted": "pin",
}  # fmt: skip
NOT_SENSITIVE_KEYS = [
    "pinned", "spinner", "shipping", "opinion", "pincode", "pin_code", "pinCode", "PinCode", "pinLength",
    "pin_required", "hasPin", "requireCvv", "collect_cvc", "cvc_check", "cvvResult", "cvv_response_code",
    "cvcLength", "cid", "CID", "content_cid", "giftCardCode", "promo_card_code", "mapPin", "certificatePin",
    "publicKeyPin", "card", "cardNumber", "code", "security", "securityQuestion", "verification_code",
    "cvv_present", "", "___", "pin1", "zip", "no_cvv", "pin_block_format", "cvc_token",
]  # fmt: skip


def test_sensitive_keys() -> None:
    for key, kind in SENSITIVE_KEYS.items():
        assert sensitive_key(key) == kind, key
    for key in NOT_SENSITIVE_KEYS:
        assert sensitive_key(key) is None, key


# --- properties ------------------------------------------------------------------------------------------

# Every separator kind the detector accepts between groups (multi-character ones included).
SEP_CHOICES = sorted(set(SEPARATORS.values()) | {"\u2000", "\u205f", "\u2010", "\u2014", "\ufeff", "\u00ad"})
SCRIPTS = [None, *DIGIT_ZEROS.values()]


@st.composite
def brand_pans(draw: st.DrawFn) -> str:
    r = draw(st.sampled_from(iin.RANGES))
    head = str(draw(st.integers(int(r.low), int(r.high)))).zfill(len(r.low))
    length = draw(st.sampled_from(sorted(r.lengths)))
    middle = draw(st.text("0123456789", min_size=length - len(head) - 1, max_size=length - len(head) - 1))
    return luhn_complete(head + middle)


@st.composite
def formatted_pans(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """(PAN, its digit groups, the separators between them): contiguous, or random groups with random
    separators. The first group has 4 to 11 digits: every real grouping starts like that (4-4-4-4, 4-6-5)."""
    pan = draw(brand_pans())
    if draw(st.booleans()):
        return pan, [pan], []
    first = draw(st.integers(4, min(11, len(pan) - 1)))
    sizes = [first]
    while sum(sizes) < len(pan):
        sizes.append(draw(st.integers(1, len(pan) - sum(sizes))))
    one_kind = draw(st.booleans())
    sep = draw(st.sampled_from(SEP_CHOICES))
    seps = [sep if one_kind else draw(st.sampled_from(SEP_CHOICES)) for _ in sizes[1:]]
    parts, at = [], 0
    for size in sizes:
        parts.append(pan[at : at + size])
        at += size
    return pan, parts, seps


# Surrounding text: anything but digits (they would join the number) and surrogates.
SURROUNDING = st.text(st.characters(blacklist_categories=("Nd", "Cs")), max_size=30)
HEX = set("0123456789abcdefABCDEF")
UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def _iban_like(left: str, digits: str, right: str) -> bool:
    """Could the detector read the PAN as part of an IBAN (2 capitals glued before it, mod 97 valid)?"""
    if len(left) < 2 or not (left[-2:].isascii() and left[-2:].isalpha() and left[-2:].isupper()):
        return False
    tail = re.match(r"[A-Z0-9 ]*", right)
    s = left[-2:] + digits + (tail.group().replace(" ", "") if tail else "")
    for n in range(15, min(34, len(s)) + 1):
        try:
            if int("".join(str(int(c, 36)) for c in s[4:n] + s[:4])) % 97 == 1:
                return True
        except ValueError:
            return False
    return False


@PROPERTY
@given(case=formatted_pans(), script=st.sampled_from(SCRIPTS), left=SURROUNDING, right=SURROUNDING)
@example(case=("4111111111111111", ["4111111111111111"], []), script=None, left="card:", right="exp")
@example(case=("4111111111111111", ["4111111111111111"], []), script=None, left="x", right="y")
@example(
    case=("378282246310005", ["3782", "822463", "10005"], [" ", " "]), script=0xFF10, left="| ", right=" |"
)
@example(case=("6011111111111117", ["6011", "1111", "1111", "1117"], ["\u00a0", "%20", "-"]), script=0x0966,
         left="", right="")  # fmt: skip
def test_any_brand_pan_formatted_any_way_is_found(
    case: tuple[str, list[str], list[str]], script: int | None, left: str, right: str
) -> None:
    pan, parts, seps = case
    if script is not None:
        parts = [in_script(p, script) for p in parts]
    body = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))
    # Documented exceptions, each with its own test above.
    assume(not left.endswith("+"))  # a phone number
    assume(not (len(seps) == 1 and seps[0] in ".\u00b7"))  # a decimal number
    assume(seps or len(pan) > 13 or not gs1_ok(pan))  # a GS1 barcode
    assume(not re.search(r"\\u[0-9a-fA-F]{0,3}$", left))  # the first digits would complete a \u escape
    if not seps and script is None:
        before = re.search(r"[0-9A-Za-z]*$", left)
        after = re.match(r"[0-9A-Za-z]*", right)
        token = (before.group() if before else "") + pan + (after.group() if after else "")
        assume(not (len(token) >= 16 and set(token) <= HEX and not token.isdecimal()))  # a hex string
    if script is None:
        assume(not _iban_like(left, pan, right))  # part of an IBAN
    text = left + body + right
    assume(not UUID_RE.search(text))
    findings = scan(text)
    assert findings == [Finding(len(left), len(left) + len(body), "pan", pan)]
    assert may_contain(text)


# Text made of the pieces that matter: digits of several scripts, separators, escapes, keywords, letters.
PIECES = st.sampled_from(
    [
        "0", "1", "4", "5", "41", "4111", "1111", "4242", "3782", "822463", "10005", "6011", "\uff14",
        "\u0664",
        " ", "-", ".", "+", "%20", "%3A", "&nbsp;", "\u00a0", "\u2009", ",", "|", "\n", "=", "^", "D", ";",
        "%B", "?", "cvv", "CVV: ", "pin ", "PIN block ", "CID ", "security code ", "a", "f", "x", "Z", "DE89",
        "\\u0034", "\\u0031", "\\\\u0032", "\u0130", "\u00e9", "4111111111111111", "1732406400000",
    ]
)  # fmt: skip
MIXED_TEXT = st.lists(PIECES, max_size=40).map("".join)


@PROPERTY
@given(text=st.one_of(MIXED_TEXT, st.text(max_size=200)))
def test_spans_are_sorted_non_overlapping_and_within_bounds(text: str) -> None:
    findings = scan(text)
    assert spans_ok(text, findings)
    for f in findings:
        assert f.kind in ("pan", "track1", "track2", "emv_track2", "cvv", "pin")
        assert (f.digits == "") == (f.kind in ("cvv", "pin"))
        if f.digits:
            assert is_pan(f.digits)


@PROPERTY
@given(text=st.one_of(MIXED_TEXT, st.text(max_size=200)))
def test_may_contain_false_means_no_findings(text: str) -> None:
    if not may_contain(text):
        assert scan(text) == []
    if scan(text):
        assert may_contain(text)


@PROPERTY
@given(texts=st.lists(st.one_of(MIXED_TEXT, st.sampled_from([t for t, _ in CARD_CORPUS[::7]] + BENIGN_CORPUS))))
def test_scan_many_gives_each_text_the_findings_of_scan(texts: list[str]) -> None:
    assert scan_many(texts) == {i: found for i, text in enumerate(texts) if (found := scan(text))}


@PROPERTY
@given(texts=st.lists(st.sampled_from([t for t, _ in CARD_CORPUS[::11]] + BENIGN_CORPUS), max_size=8))
def test_corpus_pieces_joined_give_the_findings_of_each_piece(texts: list[str]) -> None:
    # Joined the way scan_many joins them: a plain "\n" is not a boundary ("CVV: ***\n4686..." is a keyword
    # and its value on the next line, which the rule reads on purpose).
    joined = "\n\x00".join(texts)
    assert labels(scan(joined)) == [label for t in texts for label in labels(scan(t))]


@pytest.mark.parametrize("sep", ["\t", "\n", ",", ";", "|", "/", ":", "  "])
def test_separators_that_do_not_join_groups(sep: str) -> None:
    # Two valid cards side by side stay two cards; a card split by one of these is not joined.
    assert labels(scan(f"4111111111111111{sep}4242424242424242")) == ["4111111111111111", "4242424242424242"]
    assert scan(f"4111{sep}1111{sep}1111{sep}1111") == []


# --- card-dense text and what step 2 remembers ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(numbers=st.lists(st.text("0123456789", min_size=1, max_size=20), max_size=300))
@example(numbers=["9" * 20] * 2000 + ["4111111111111111", "0"])  # the largest sums, many blocks
def test_luhn_of_many_numbers_at_once_is_luhn_of_each(numbers: list[str]) -> None:
    raw = [n.encode() for n in numbers]
    assert detect._luhn_many(raw) == bytes(detect._luhn_ok(n) for n in raw)
    assert all(detect._luhn_ok(n.encode()) == luhn_ok(n) for n in numbers)


def _dense_table(rows: int, seed: int) -> tuple[str, list[str]]:
    """A Markdown table of orders with a card in every row, written in many ways, and a few rows with a
    track, a phone number, an IBAN, an invalid number or a card the neighbours' rules look at."""
    rng = random.Random(seed)
    pans = generated_pans()
    lines, expected = ["| # | customer | card | exp | amount |"], []
    for i in range(rows):
        pan = rng.choice(pans)
        form = rng.choice(["plain", "space", "dash", "usual", "last-short", "csv"])
        sizes = {"usual": usual_grouping(pan), "last-short": [4] * 4 + [3]}.get(form, [4] * 5)
        card = pan if form == "plain" else grouped(pan, sizes, "-" if form in ("dash", "csv") else " ")
        if i % 37 == 5:
            lines.append(f"| {i} | track | ;{pan}=29121010000000000000? | 12/29 | 1.00 |")
            expected.append("track2" if is_pan(pan) else "")
        elif i % 41 == 7:
            lines.append(f"| {i} | call | +49 30 12345678 or {card} | 12/29 | 2.00 |")
            expected.append(pan)
        elif i % 43 == 9:
            lines.append(f"| {i} | bank | {iban_with_check('DE', '370400440532013000')} | - | 3.00 |")
        elif i % 47 == 11:
            lines.append(f"| {i} | typo | {pan[:-1]}{(int(pan[-1]) + 1) % 10} | 12/29 | 4.00 |")
        elif i % 53 == 13:
            lines.append(f"| {i} | hex | deadbeef{pan} | 12/29 | 5.00 |")  # a card glued to hex letters
        else:
            lines.append(f"| {i} | J. Doe | {card} | 12/29 | {rng.randint(1, 99999) / 100:.2f} |")
            expected.append(pan)
    return "\n".join(lines), [e for e in expected if e]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_card_dense_text_every_card_once_in_order(seed: int) -> None:
    text, expected = _dense_table(600, seed)
    found = scan(text)
    assert labels(found) == expected
    assert spans_ok(text, found)
    assert labels(found) == [label for line in text.split("\n") for label in labels(scan(line))]
    assert may_contain(text)


def test_what_a_run_key_says_is_the_same_worked_out_or_remembered() -> None:
    texts = [t for t, _ in CARD_CORPUS] + BENIGN_CORPUS + [_dense_table(200, 4)[0], "9" * 5000 + " 12 " * 999]
    detect._READS.clear()
    cold = [scan(t) for t in texts]
    assert [scan(t) for t in texts] == cold
    assert detect._READS and max(map(len, detect._READS)) <= detect._KEY_KEPT  # long runs are not kept


def test_may_contain_reads_chains_to_the_end() -> None:
    # A chain that fails Luhn, or an id of more than 19 digits, is no card: nothing to mask.
    assert not may_contain("order 4111111111111112 and ref 41111111111111111234 on 2024-11-24")
    assert may_contain("x" * 5000 + " card 4111 1111 1111 1111")
