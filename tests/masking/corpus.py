"""Test corpus for relay.masking.detect: card data written the ways systems write it, and text to leave alone.

CARD_CORPUS holds (text, expected) pairs, where `expected` lists the findings `scan(text)` must return in
order: a PAN's ASCII digits for a "pan" finding, the kind ("track1", "track2", "emv_track2", "cvv", "pin")
for any other finding (`labels()` turns findings into that form). BENIGN_CORPUS holds text that must give no
finding at all. Both are built deterministically (fixed seed) and are shared with the guard tests and the
benchmarks. This module has its own Luhn, GS1 and IBAN code on purpose, so that it does not test the
detector against itself.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Protocol

# Published test card numbers. Every number is checked (Luhn and brand) in test_detect.py.
#
# Stripe, "Testing" > "Cards by brand" (https://docs.stripe.com/testing#cards); 4012888888881881,
# 30569309025904, 38520000023237 and 3530111333300000 are from earlier versions of that page.
STRIPE = [
    "4242424242424242",  # Visa
    "4000056655665556",  # Visa (debit)
    "4012888888881881",  # Visa
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard (2-series)
    "5200828282828210",  # Mastercard (debit)
    "5105105105105100",  # Mastercard (prepaid)
    "378282246310005",  # American Express
    "371449635398431",  # American Express
    "6011111111111117",  # Discover
    "6011000990139424",  # Discover
    "6011981111111113",  # Discover (debit)
    "3056930009020004",  # Diners Club
    "36227206271667",  # Diners Club (14-digit card)
    "30569309025904",  # Diners Club
    "38520000023237",  # Diners Club
    "6555900000604105",  # BCcard and DinaCard
    "3566002020360505",  # JCB
    "3530111333300000",  # JCB
    "6200000000000005",  # UnionPay
    "6200000000000047",  # UnionPay (debit)
    "6205500000000000004",  # UnionPay (19-digit card)
]
# Adyen, "Test card numbers" (https://docs.adyen.com/development-resources/test-cards-and-credentials/
# test-card-numbers) and the point-of-sale test cards v1-v3
# (https://docs.adyen.com/point-of-sale/testing-pos-payments/test-card-v1, -v2, -v3).
ADYEN = [
    "4111111145551142",  # Visa
    "4400000000000008",  # Visa (AVS)
    "4988438843884305",  # Visa
    "4166676667666746",  # Visa
    "4646464646464644",  # Visa
    "4000620000000007",  # Visa commercial
    "4444333322221111",  # Visa
    "2222400070000005",  # Mastercard
    "5555341244441115",  # Mastercard
    "5577000055770004",  # Mastercard
    "2222410740360010",  # Mastercard
    "2223000048410010",  # Mastercard
    "5100290029002909",  # Mastercard
    "370000000000002",  # American Express
    "374245455400126",  # American Express
    "374251018720018",  # American Express (AVS)
    "36006666333344",  # Diners
    "36070500001020",  # Diners
    "6011601160116611",  # Discover
    "6445644564456445",  # Discover
    "3569990010095841",  # JCB
    "6771798021000008",  # Maestro
    "6250946000000016",  # UnionPay
    "6243030000000001",  # POS test card v2, CNY application (a UnionPay range)
    "8171999927660000",  # UnionPay
    "8171999900000000021",  # UnionPay (19 digits)
    "4035501000000008",  # Cartes Bancaires (Visa co-badged)
    "6703444444444449",  # Bancontact (Maestro range)
    "5413330089099999",  # POS test card: Mastercard
    "5100060000000002",  # POS test card: Mastercard
    "5520330000000001",  # POS test card: Mastercard
    "2308880000000000",  # POS test card: Mastercard
    "4151500000000008",  # POS test card: Visa (MSR)
    "6000070736169237003",  # POS test card: Maestro (19 digits)
    "6799998900000099990",  # POS test card v1: Maestro (19 digits)
    "6799998900000999991",  # POS test card v1: Maestro (19 digits)
    "5413330089999990",  # POS test card v1: Mastercard
    "5413330089020037",  # POS test card v1: Mastercard (MSR)
    "4111110007020006",  # POS test card v3: Visa
]
# Braintree, "Testing and Go Live" > "Credit card numbers"
# (https://developer.paypal.com/braintree/docs/reference/general/testing).
BRAINTREE = [
    "4111111111111111",  # Visa
    "4005519200000004",  # Visa
    "4009348888881881",  # Visa
    "4012000033330026",  # Visa
    "4012000077777777",  # Visa
    "4217651111111119",  # Visa
    "4500600000000061",  # Visa
    "2223000048400011",  # Mastercard
    "378282246310005",  # American Express
    "6011111111111117",  # Discover
    "3530111333300000",  # JCB
    "36259600000004",  # Diners Club
    "6304000000000000",  # Maestro
]
PUBLISHED = list(dict.fromkeys(STRIPE + ADYEN + BRAINTREE))

# Brand prefixes and lengths for generated numbers (a sample of each range in relay/masking/iin.py).
BRAND_SAMPLES: dict[str, tuple[list[str], list[int]]] = {
    "visa": (["4", "4026", "417500", "4571"], [13, 16, 18, 19]),
    "mastercard": (["51", "55", "2221", "2720", "2500"], [16]),
    "amex": (["34", "37"], [15]),
    "discover": (["6011", "644", "649", "65", "622126", "622925"], [16, 17, 18, 19]),
    "jcb": (["3528", "3589", "3555"], [16, 17, 18, 19]),
    "unionpay": (["62", "8100", "8171"], [14, 15, 16, 17, 18, 19]),
    "diners": (["300", "305", "3095", "36", "38", "39"], [14, 15, 16, 17, 18, 19]),
    "maestro": (["50", "5018", "5893", "56", "6304", "6759", "6763", "69"], [12, 13, 14, 15, 16, 17, 18, 19]),
}


class _Finding(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def digits(self) -> str: ...


def labels(findings: Iterable[_Finding]) -> list[str]:
    """Findings in CARD_CORPUS's `expected` form: digits for a PAN, the kind for anything else."""
    return [f.digits if f.kind == "pan" else f.kind for f in findings]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        v = int(c) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def luhn_complete(body: str) -> str:
    """`body` plus the Luhn check digit."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def gs1_ok(digits: str) -> bool:
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def iban_with_check(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def generated_pan(rng: random.Random, prefix: str, length: int, *, gtin_ok: bool = True) -> str:
    """A Luhn-valid number of `length` digits starting with `prefix`."""
    while True:
        body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
        pan = luhn_complete(body)
        # 12/13-digit numbers that are also valid GS1 barcodes are left alone by design.
        if gtin_ok or length > 13 or not gs1_ok(pan):
            return pan


def generated_pans(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    pans = []
    for prefixes, lengths in BRAND_SAMPLES.values():
        for prefix in prefixes:
            for length in lengths:
                pans.append(generated_pan(rng, prefix, length, gtin_ok=False))
    return pans


# Digits of other scripts (each a run of ten code points starting at zero).
DIGIT_ZEROS = {
    "fullwidth": 0xFF10,
    "arabic-indic": 0x0660,
    "extended-arabic-indic": 0x06F0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
    "mathematical-bold": 0x1D7CE,
}


def in_script(digits: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in digits)


def grouped(pan: str, sizes: Sequence[int], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(pan[at : at + size])
        at += size
    if at < len(pan):
        parts.append(pan[at:])
    return sep.join(p for p in parts if p)


def usual_grouping(pan: str) -> list[int]:
    if len(pan) == 15:
        return [4, 6, 5]
    if len(pan) == 14:
        return [4, 6, 4]
    return [4] * (len(pan) // 4)


def json_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if c.isdigit() else c for c in text)


SEPARATORS = {
    "space": " ",
    "dash": "-",
    "dot": ".",
    "nbsp": "\u00a0",
    "thin": "\u2009",
    "narrow-nbsp": "\u202f",
    "figure": "\u2007",
    "ideographic": "\u3000",
    "zwsp": "\u200b",
    "en-dash": "\u2013",
    "non-breaking-hyphen": "\u2011",
    "minus": "\u2212",
    "fullwidth-hyphen": "\uff0d",
    "middle-dot": "\u00b7",
    "plus": "+",
    "percent-20": "%20",
    "html-nbsp": "&nbsp;",
    "html-160": "&#160;",
}


def _card_corpus() -> list[tuple[str, list[str]]]:
    rng = random.Random(1234)
    out: list[tuple[str, list[str]]] = []
    pans = PUBLISHED + generated_pans()
    for pan in pans:
        out.append((pan, [pan]))
        out.append((grouped(pan, usual_grouping(pan), " "), [pan]))
    # Every separator with every published number, in the brand's usual grouping and in 4-4-4-... groups.
    for name, sep in SEPARATORS.items():
        for pan in PUBLISHED:
            out.append((f"card {grouped(pan, usual_grouping(pan), sep)} exp", [pan]))
            if name != "dot":  # a dot between exactly two groups is a decimal number, see test_detect
                out.append((grouped(pan, [4, 4, 4, 4, 3][: len(pan) // 4], sep), [pan]))
    # Other groupings.
    for pan in PUBLISHED:
        for sizes in ([4, 6, 5], [6, 10], [4, 4, 4], [5, 5, 5], [8, 8], [4, 3, 3, 3, 3], [6, 6, 4]):
            out.append((f"PAN: {grouped(pan, sizes, ' ')}.", [pan]))
    # Unicode digits, in every script, contiguous and grouped with Unicode spaces.
    for zero in DIGIT_ZEROS.values():
        for pan in PUBLISHED[::3]:
            out.append((f"number {in_script(pan, zero)} end", [pan]))
            out.append((in_script(grouped(pan, usual_grouping(pan), "\u00a0"), zero), [pan]))
    # Glued to letters and punctuation, in URLs, CSV, Markdown, JSON and escaped JSON.
    for pan in PUBLISHED:
        spaced = grouped(pan, usual_grouping(pan), " ")
        out += [
            (f"card:{pan}exp", [pan]),
            (f"x{pan}y", [pan]),
            (f"(({pan}))", [pan]),
            (f"ORD-{pan}", [pan]),
            (f"https://pay.example.com/checkout?card={pan}&amount=1000", [pan]),
            (f"https://pay.example.com/c/{pan}/receipt", [pan]),
            (f"/v1/charge?number={spaced.replace(' ', '+')}&currency=eur", [pan]),
            (f"q=card%20{spaced.replace(' ', '%20')}%20exp", [pan]),
            (f"q=card%3A{pan}", [pan]),
            (f"id,name,card,exp\n17,Jane Roe,{pan},12/29\n", [pan]),
            (f"| 17 | Jane Roe | {spaced} | 12/29 | 1,234.50 |", [pan]),
            (json.dumps({"card": {"number": pan, "exp_month": 12, "exp_year": 2029}}), [pan]),
            (json.dumps({"note": f"customer paid with {spaced}"}), [pan]),
            (json_escaped(json.dumps({"number": pan})), [pan]),
            (json_escaped(spaced), [pan]),
            (f"{pan},{PUBLISHED[0]}", [pan, PUBLISHED[0]]),
            (f"{pan}\t{spaced}\n{pan}", [pan, pan, pan]),
        ]
    # A JSON document embedded as text inside a string, with escaped digits (\u0034...).
    doc = json.dumps({"payment": {"pan": "4111111111111111", "note": "x"}}, ensure_ascii=True)
    out.append((json.dumps({"raw": json_escaped(doc)}), ["4111111111111111"]))
    # Track data.
    for pan in PUBLISHED[::2]:
        out += [
            (f"%B{pan}^DOE/JOHN^29121010000000000000?", ["track1"]),
            (f"B{pan}^DOE/JOHN A.MR^2912101000000?", ["track1"]),
            (
                f"swipe: %B{pan}^ROE/JANE^2912101123456789 00000?;{pan}=29121011234567890?",
                ["track1", "track2"],
            ),
            (f";{pan}=29121010000012300000?", ["track2"]),
            (f"track2={pan}=29121010000012300000", ["track2"]),
            (f"{pan}D29121010000012300000F", ["emv_track2"]),
            (f"57 13 {pan}D2912101000001230000F", ["emv_track2"]),
            (f"5713{pan}D29121010000012300000F", ["emv_track2"]),
            (f"tag57={pan.lower()}d2912101000001230000f", ["emv_track2"]),
        ]
    # Keyword CVV / PIN: only the value is a finding.
    cvv_lines = [
        "CVV: 123", "cvv2=123", "CVC 4567", "cvc=4567", "CVC2: 737", "CID: 1234", "CAV2 123", "CVN: 123",
        "security code 123", "Security Code: 1234", "card code: 123", "card verification value: 123",
        "Card Verification Code = 321", "card security code 999", "csc: 321", "CVV is 123",
        "CVV number: 123", "cvv_code=123", "CVV (3 digits): 123", '{"cvv": "123"}', '{"cvc":737}',
        '\\"cvv\\": \\"123\\"', "<cvv>123</cvv>", "| CVV | 123 |", "cvv%3D123", "card_cvv: 123",
        "CVV/CVC: 123", "cvv: \uff11\uff12\uff13", "CVV no. 123", "cvv no: 123",
    ]  # fmt: skip
    out += [(line, ["cvv"]) for line in cvv_lines]
    pin_lines = [
        "PIN: 1234", "pin=1234", "PIN 123456", "pin number: 4321", "PIN is 9876", "PIN code: 1234",
        "pin block: 0412AC89ABCDEF67", "PIN block 0412 AC89 ABCD EF67", "pinblock=0412ac89abcdef67",
        '{"pin": "1234"}', "card_pin: 4321", "PIN: 1234567",
    ]  # fmt: skip
    out += [(line, ["pin"]) for line in pin_lines]
    out += [
        ("card 4111 1111 1111 1111 exp 12/29 cvv 123", ["4111111111111111", "cvv"]),
        ("Visa 4242424242424242, CVC: 737, PIN: 1234", ["4242424242424242", "cvv", "pin"]),
        ("3000 4111 1111 1111 1111", ["4111111111111111"]),  # merged: nothing of the card stays visible
    ]
    # Random extra text around numbers (fixed seed).
    words = ["paid", "with", "card", "ref", "amount", "EUR", "12.50", "2024-11-24", "Jane", "#42"]
    for pan in pans[::5]:
        left = " ".join(rng.choice(words) for _ in range(4))
        right = " ".join(rng.choice(words) for _ in range(4))
        out.append((f"{left}: {pan}; {right}", [pan]))
    return out


def _luhn_valid_with_prefix(rng: random.Random, prefix: str, length: int) -> str:
    return generated_pan(rng, prefix, length)


def _benign_corpus() -> list[str]:
    rng = random.Random(99)
    out: list[str] = []
    # Millisecond / microsecond / nanosecond timestamps, Luhn-valid ones included.
    for _ in range(40):
        ms = rng.randrange(1_500_000_000_000, 1_800_000_000_000)
        out += [str(ms), f"ts={ms * 1000}", f'{{"ts": {ms * 1_000_000}}}']
    for _ in range(20):
        out.append(_luhn_valid_with_prefix(rng, "17", 13))
    # Snowflake ids (Twitter/X, Discord: 17-19 digits, today starting with 1), Luhn-valid ones included.
    out += ["1541815603606036480", "175928847299117063", "1100000000000000000", "1293847561029384756"]
    out += [_luhn_valid_with_prefix(rng, "1", n) for n in (17, 18, 19) for _ in range(10)]
    # Luhn-valid numbers whose prefix no brand issues (0, 1, 7, 9, 31-33, 2000-2220, 2721-2999, 80, 82-89).
    for prefix in (
        "0",
        "1",
        "7",
        "9",
        "31",
        "32",
        "33",
        "2000",
        "2220",
        "2721",
        "2999",
        "80",
        "82",
        "89",
        "8172",
    ):
        for length in (12, 13, 14, 15, 16, 17, 18, 19):
            out.append(_luhn_valid_with_prefix(rng, prefix, length))
    # Brand prefix with a length the brand does not issue (Amex 16, Mastercard 15/17, Visa 14/15/17).
    for prefix, length in (("34", 16), ("37", 14), ("51", 15), ("55", 17), ("4", 14), ("4", 15), ("4", 17)):
        out += [_luhn_valid_with_prefix(rng, prefix, length) for _ in range(3)]
    # More than 19 digits in a row is an id, even with a valid card inside.
    out += [f"id {'4111111111111111' + '1234'}", "order 41111111111111111111111", "9" * 40]
    out.append("ref 12345678901234567890123456789 4")
    # UUIDs, random and with all-digit groups.
    out += [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(30)]
    out += ["550e8400-e29b-41d4-a716-446655440000", "00000000-0000-4000-8000-601100000008"]
    out.append(f"12345678-1234-4123-8123-{_luhn_valid_with_prefix(rng, '60', 12)}")
    # Phone numbers, national and E.164, a few with brand prefixes and a valid Luhn digit.
    out += [
        "+1 415 555 0132", "+14155550132", "(415) 555-0132", "415-555-0132", "+44 20 7946 0958",
        "+44 7911 123456", "+447911123456", "+49 30 123456789", "+33 6 12 34 56 78", "+55 11 98765-4321",
        "+61 4 1234 5678", "+81 3-1234-5678", "tel:+1-800-555-0199", "+1 (415) 555-0132 ext. 42",
    ]  # fmt: skip
    for prefix in ("+49", "+41", "+45", "+36", "+65", "+62"):
        digits = _luhn_valid_with_prefix(rng, prefix[1:], 13)
        out += [f"+{digits}", f"call +{digits[:2]} {digits[2:5]} {digits[5:9]} {digits[9:]}"]
    # IBANs, including made-up ones whose digits hold a valid card number.
    out += [
        "GB82WEST12345698765432", "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000", "FR76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189",
        "NL91ABNA0417164300", "BE68539007547034", "BE68 5390 0754 7034", "CH9300762011623852957",
        "ES91 2100 0418 4502 0005 1332", "IT60X0542811101000000123456", "NO9386011117947",
    ]  # fmt: skip
    for bban in ("411111111111111111", "555555555555444411", "601111111111111711"):
        iban = iban_with_check("DE", bban)
        out += [iban, " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))]
    out.append(iban_with_check("BE", "4242424242424242"[:12]))
    # Dates and ISO timestamps.
    out += [
        "2024-11-24", "24.11.2024", "11/24/2024", "2024-11-24 10:00:00", "20241124", "Nov 24, 2024",
        "2024-11-24T10:00:00.123456789Z", "2024-11-24T10:00:00+01:00", "2024-11-24 10:00:00.123456",
        "2024-11-24 2025-01-31 2026-12-31", "20241124T100000Z", "Sun, 24 Nov 2024 10:00:00 GMT",
    ]  # fmt: skip
    # Amounts and other decimals, including a fraction that is a valid card number.
    out += [
        "1,234,567.89", "$4,111,111,111.11", "1.234.567,89 \u20ac", "1 234 567,89", "1\u202f234\u202f567,89",
        "EUR 4 111 111 111 111 111", "0.4111111111111111", "1.4242424242424242", "3.5412345678901234",
    ]  # fmt: skip
    for _ in range(10):
        frac = _luhn_valid_with_prefix(rng, "4", 16)
        out += [f"0.{frac}", f"{frac[:4]}.{frac[4:]}", f"score={rng.randint(0, 9)}.{frac}"]
    # Hashes and hex ids, including some with a valid card number inside a digit run.
    for i in range(40):
        blob = str(i).encode()
        out += [
            hashlib.sha256(blob).hexdigest(),
            hashlib.md5(blob).hexdigest(),
            hashlib.sha1(blob).hexdigest(),
        ]
    out += [
        "a3f5" + "4111111111111111" + "bc" + "0" * 42,
        "deadbeef4242424242424242cafe",
        f"trace_id={'4111111111111111'}abcdef0123456789",
        "ObjectId('5f1d7a2b4111111111111111')",
        "commit 4111111111111111a",
    ]
    # Version strings, SKUs, barcodes (GTIN-13 that also pass Luhn with a brand prefix), IMEIs, IPs.
    out += [
        "1.2.3", "v4.11.1111", "2024.11.24.1", "10.0.19045.4412", "4.1111.1111.1111", "Python 3.11.7",
        "SKU-4111-11-BLK", "ABC-123456-XL", "item 4006381333931", "192.168.100.200", "10.0.0.1:8080",
        "353456789012348", "IMEI 356938035643809", "860000000000005", "ISBN 978-3-16-148410-0",
    ]  # fmt: skip
    rng_gtin = random.Random(5)
    found = 0
    while found < 10:
        gtin = _luhn_valid_with_prefix(rng_gtin, rng_gtin.choice(["40", "50", "69", "62"]), 13)
        if gs1_ok(gtin):
            out.append(f"gtin {gtin}")
            found += 1
    # Already-masked values.
    out += [
        "************1111", "4111 11** **** 1111", "[card ****1111 tok_1N3T00LkdIwHu7ix]", "411111******1111",
        "XXXX-XXXX-XXXX-1111", "\u2022\u2022\u2022\u2022 4242", "card ending in 4242", "BIN 411111",
        "411111XXXXXX1111", "4111-11XX-XXXX-1111",
    ]  # fmt: skip
    # Words that contain a keyword, keywords without a value, values that are not CVVs or PINs.
    out += [
        "cvc_check: pass", '{"cvc_check": "pass", "address_zip_check": "pass"}', "Pincode: 560001",
        "PIN code: 560001", "pincode 560001", "spinner 1234", "opinion 12345", "shipping 123", "pinned 1234",
        "cid=1234", "content cid 1234", "CVV: ***", "pin 12", "GPIO pin 13", "CVV: 12345", "decided 123",
        "mapping 4321", "the cvv field is required", "PIN: ****", "cvv_result: M", "code 1234",
        "card 12 of 52", "scvv 123", "discovery 123", "Enter your PIN. 2000 customers did.", "CVV, 123 left",
    ]  # fmt: skip
    # Prose and logs.
    out += [
        "The quick brown fox paid 12.50 EUR on 2024-11-24 for order #4521.",
        "GET /v1/charges?limit=100&created[gte]=1732406400 HTTP/1.1 200 1432 0.023",
        "2024-11-24 10:00:00,123 INFO worker-3 processed 1234 events in 5678 ms (pid 4321)",
        "card brand: visa, last4: 4242, exp 12/29, funding: credit",
    ]
    return out


CARD_CORPUS: list[tuple[str, list[str]]] = _card_corpus()
BENIGN_CORPUS: list[str] = _benign_corpus()
