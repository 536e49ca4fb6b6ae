"""Masking benchmark: relay's card-data masker against Presidio's CreditCardRecognizer, in one run.

Usage::

    python benchmarks/masking.py [--rounds 3] [--reps 3] [--clean-mb 10] [--dense-mb 3]
                                 [--only relay,presidio] [--json FILE] [--check] [--no-setup]

What it measures, for both engines, side by side:

* recall over ``CARD_CORPUS`` of ``tests/masking/corpus.py``: the share of expected PANs all of whose
  digits lie inside a finding (relay: any finding; Presidio: a ``CREDIT_CARD`` result), overall and per
  category (the corpus's own tags if it has any, else the written form read off the text: contiguous,
  space, dash, Unicode space, ``%20``, non-ASCII digits, JSON ``\\u`` escapes, glued to letters, ...); the
  track data, CVV and PIN items separately (Presidio has no recognizer for them); and the texts whose
  findings are exactly the expected list (what ``tests/masking`` asserts);
* false positives: findings on ``BENIGN_CORPUS`` (and, as a check, on the generated texts below);
* throughput in MB/s (10^6 bytes of UTF-8 per second) on ~10 MB of realistic text without card data
  (prose, JSON API responses, log lines, CSV) and on card-dense text (2,000-row Markdown tables and CSVs
  with a card in every row, contiguous, spaced or dashed, ~110 KB each);
* latency of one ~1 MB ``tools/call`` result without card data: relay's ``Masker.message`` on the parsed
  message (the message is parsed by relay anyway; the parse is reported on its own), Presidio's
  ``analyze`` on every string of the parsed result.

Both engines run in worker processes that execute this same file with ``--worker``: relay's with this
interpreter, Presidio's with ``benchmarks/.venv-presidio/bin/python`` (Presidio pulls spaCy and cannot share
relay's venv).  The venv is made on first run from the pinned ``benchmarks/presidio-requirements.txt``
(``pip install --no-deps``; redone only when the pins change).  The recognizer is used on its own,
``CreditCardRecognizer().analyze(text, ["CREDIT_CARD"], None)``: regex + Luhn, no NLP engine, no spaCy model.

The texts are generated here, deterministically (``--seed``), and written once to a temporary folder that
every worker reads.  Each round runs every worker afresh, in an order rotated every round; each worker
makes ``--reps`` timed passes over each throughput text (after one untimed pass) and times the 1 MB message
for at least a second.  All samples are pooled: the tables show the median and, in brackets, the lowest and
highest sample.  ``--check`` exits 1 when relay misses a target or cannot be measured.

This module imports only the standard library at the top: the Presidio worker runs it in Presidio's venv.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import importlib.util
import itertools
import json
import random
import re
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = BENCH_DIR.parent
CORPUS_FILE: Final = REPO_ROOT / "tests" / "masking" / "corpus.py"
PRESIDIO_VENV: Final = BENCH_DIR / ".venv-presidio"
PRESIDIO_REQUIREMENTS: Final = BENCH_DIR / "presidio-requirements.txt"
ENGINES: Final = ("relay", "presidio")
PAN_KIND: Final = "pan"

# Relay's targets (from the issue).
TARGET_RECALL: Final = 100.0  # % of CARD_CORPUS
TARGET_FALSE_POSITIVES: Final = 0  # findings on BENIGN_CORPUS
TARGET_CLEAN_MBPS: Final = 100.0
TARGET_DENSE_MBPS: Final = 30.0
TARGET_LATENCY_MS: Final = 20.0

MESSAGE_BYTES: Final = 1_000_000  # the "1 MB" tool result
LATENCY_MIN_SECONDS: Final = 1.0
LATENCY_MIN_REPS: Final = 5
LATENCY_MAX_REPS: Final = 200

_PROBE: Final = (
    "from presidio_analyzer.predefined_recognizers import CreditCardRecognizer\n"
    "r = CreditCardRecognizer().analyze('card 4111 1111 1111 1111 x', ['CREDIT_CARD'], None)\n"
    "assert [(x.start, x.end) for x in r] == [(5, 24)], r\n"
)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# =========================================================================== Presidio's venv


class SetupError(RuntimeError):
    """Presidio could not be installed."""


def _presidio_python() -> Path:
    return PRESIDIO_VENV / "bin" / "python"


def _run_setup(command: list[str]) -> None:
    _log(f"[setup] {' '.join(command)}")
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SetupError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}")


def setup_presidio() -> None:
    """Make ``benchmarks/.venv-presidio`` from the pinned requirements unless it is already there.

    The venv is made afresh when the pins change, so that it holds exactly the pinned set.
    """
    stamp = PRESIDIO_VENV / ".relay-bench-requirements.sha256"
    digest = hashlib.sha256(PRESIDIO_REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest and _presidio_python().exists():
        return
    if PRESIDIO_VENV.exists():
        shutil.rmtree(PRESIDIO_VENV)
    _run_setup([sys.executable, "-m", "venv", str(PRESIDIO_VENV)])
    _run_setup([str(_presidio_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-deps", "-r", str(PRESIDIO_REQUIREMENTS)])  # fmt: skip
    _run_setup([str(_presidio_python()), "-c", _PROBE])
    stamp.write_text(digest + "\n")


# =========================================================================== cards and Luhn


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it pass Luhn."""
    for check in "0123456789":
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Brand:
    name: str
    weight: float
    prefixes: Callable[[random.Random], str]
    lengths: tuple[int, ...]


def _range_prefix(low: int, high: int) -> Callable[[random.Random], str]:
    return lambda rng: str(rng.randint(low, high))


def _choice_prefix(*options: str) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(options)


# Weights roughly as cards show up in a European/US acquirer's data; every brand appears.
BRANDS: Final = (
    Brand("visa", 40, _choice_prefix("4"), (16,)),
    Brand("mastercard-5", 20, _range_prefix(51, 55), (16,)),
    Brand("mastercard-2", 8, _range_prefix(2221, 2720), (16,)),
    Brand("amex", 10, _choice_prefix("34", "37"), (15,)),
    Brand("discover", 5, _choice_prefix("6011", "65", "644", "645", "646", "647", "648", "649"), (16,)),
    Brand("jcb", 4, _range_prefix(3528, 3589), (16,)),
    Brand("diners", 3, _choice_prefix("36", "300", "301", "302", "303", "304", "305"), (14,)),
    Brand("unionpay", 6, _choice_prefix("62"), (16, 19)),
    Brand("maestro", 4, _choice_prefix("6759", "5018", "5020", "6304"), (16, 19)),
)
FORMATS: Final = ("contiguous", "spaces", "dashes")


def make_pan(rng: random.Random, brand: Brand) -> str:
    length = rng.choice(brand.lengths)
    body = brand.prefixes(rng)
    body += "".join(rng.choice(string.digits) for _ in range(length - 1 - len(body)))
    return luhn_complete(body)


def _grouping(length: int) -> tuple[int, ...]:
    """How a PAN of this length is printed: 4-4-4-4, Amex 4-6-5, Diners 4-6-4, 19 digits 4-4-4-4-3."""
    return {15: (4, 6, 5), 14: (4, 6, 4), 19: (4, 4, 4, 4, 3), 13: (4, 3, 3, 3)}.get(length, (4, 4, 4, 4))


def format_pan(digits: str, fmt: str) -> str:
    if fmt == "contiguous":
        return digits
    groups, i = [], 0
    for size in _grouping(len(digits)):
        groups.append(digits[i:i + size])
        i += size
    return (" " if fmt == "spaces" else "-").join(groups)


def pick_brand(rng: random.Random) -> Brand:
    return rng.choices(BRANDS, weights=[b.weight for b in BRANDS])[0]


# A run of ASCII digit groups joined by one space or dash: where a card number could hide.
_GROUP_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")


def looks_like_pan(text: str) -> bool:
    """True when whole digit groups in ``text`` add up to 12-19 digits that pass Luhn.

    Used to keep the texts "without card data" honest: a generated line that could be read as a PAN is
    drawn again.
    """
    for run in _GROUP_RUN.finditer(text):
        groups = re.split(r"[ -]", run.group())
        for i in range(len(groups)):
            digits = ""
            for group in groups[i:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 12 and luhn_ok(digits):
                    return True
    return False


# =========================================================================== realistic text without card data

_FIRST = ("Maria", "Jonas", "Aiko", "Liam", "Sofía", "Mateusz", "Chloé", "Noah", "Emma", "Björn", "Priya",
          "Oliver", "Zoë", "Luca", "Ana", "Kwame", "Yuki", "Hannah", "Ömer", "Fatima")
_LAST = ("Jensen", "Müller", "Tanaka", "O'Brien", "García", "Kowalski", "Dubois", "Smith", "Rossi", "Nilsson",
         "Patel", "Brown", "Novák", "Silva", "Mensah", "Sato", "Schmidt", "Y\u0131lmaz", "Haddad", "Larsen")
_MERCHANTS = ("Café Zürich", "Łódź Books", "Nordic Outfitters AB", "Bäckerei Müller", "São Paulo Eletrônicos",
              "Acme Hardware Ltd", "Blue Harbour Coffee", "Les Délices de Provence", "Köln Fahrradladen",
              "Oslo Fjord Tours", "Praha Pivo s.r.o.", "Tokyo Ramen 一蘭", "Green Leaf Grocers", "Atlas Travel",
              "Sunrise Pharmacy", "Bit & Byte Electronics")
_CITIES = ("Amsterdam", "Zürich", "Łódź", "Stockholm", "São Paulo", "Dublin", "Lyon", "Köln", "Oslo", "Praha",
           "Tokyo", "Austin", "Toronto", "Madrid", "Milano", "København")
_CURRENCIES = ("EUR", "USD", "GBP", "SEK", "CHF", "PLN", "DKK", "JPY", "CZK", "BRL")
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
_STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "refunded", "pending", "disputed")
_DECLINES = ("insufficient_funds", "do_not_honor", "expired_card", "incorrect_cvc", "generic_decline",
             "card_velocity_exceeded", "processing_error")
_CARD_BRANDS = ("visa", "mastercard", "amex", "discover", "jcb", "unionpay", "diners")
_REASONS = ("10.4 Other Fraud", "13.1 Merchandise Not Received", "4853 Cardholder Dispute", "4837 No Authorization",
            "12.6 Duplicate Processing")
_PATHS = ("/v1/charges", "/v1/payment_intents", "/v1/refunds", "/v1/customers", "/v1/payouts", "/v1/disputes",
          "/healthz", "/v1/balance_transactions")
_AGENTS = ("Stripe/v1 PythonBindings/7.1.0", "okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64)",
           "curl/8.5.0", "Go-http-client/2.0", "python-httpx/0.28.1")
# IBAN layouts (BBAN: "a" upper-case letter, "n" digit), as banks print them.
_IBAN_BANKS = (("DE", "n" * 18), ("NL", "aaaa" + "n" * 10), ("GB", "aaaa" + "n" * 14), ("FR", "n" * 23),
               ("ES", "n" * 20), ("SE", "n" * 20), ("PL", "n" * 24), ("CH", "n" * 17))
_ALNUM = string.ascii_letters + string.digits


class Gen:
    """Seeded generators of realistic, card-free values and documents."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- values ---------------------------------------------------------------------------------------

    def token(self, prefix: str, n: int = 24) -> str:
        return prefix + "".join(self.rng.choice(_ALNUM) for _ in range(n))

    def hexs(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def uuid(self) -> str:
        h = self.hexs(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{self.rng.choice('89ab')}{h[17:20]}-{h[20:]}"

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def epoch(self) -> int:
        return self.rng.randint(1_704_067_200, 1_798_761_600)  # 2024-01-01 .. 2026-12-31

    def iso(self, epoch: int | None = None, ms: bool = False) -> str:
        t = time.gmtime(self.epoch() if epoch is None else epoch)
        frac = f".{self.rng.randint(0, 999):03d}" if ms else ""
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + frac + "Z"

    def date(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.epoch()))

    def human_date(self) -> str:
        return time.strftime("%d %B %Y", time.gmtime(self.epoch()))

    def name(self) -> str:
        return f"{self.rng.choice(_FIRST)} {self.rng.choice(_LAST)}"

    def email(self, name: str) -> str:
        ascii_name = unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()
        local = re.sub(r"[^a-z]+", ".", ascii_name)
        return f"{local}{self.rng.randint(1, 99)}@{self.rng.choice(('example.com', 'mail.example.org', 'corp.example.net'))}"

    def phone(self) -> str:
        return self.rng.choice((
            f"+1 {self.rng.randint(201, 989)} 555 {self.digits(4)}",
            f"+44 20 7946 {self.digits(4)}",
            f"+49 30 {self.digits(8)}",
            f"+33 1 {self.digits(2)} {self.digits(2)} {self.digits(2)} {self.digits(2)}",
            f"+46 8-{self.digits(3)} {self.digits(3)} {self.digits(2)}",
            f"(0{self.rng.randint(10, 99)}) {self.digits(4)}-{self.digits(4)}",
            f"+81-3-{self.digits(4)}-{self.digits(4)}",
        ))

    def iban(self, spaced: bool) -> str:
        """A valid IBAN (ISO 13616 check digits), printed in groups of four or not."""
        country, layout = self.rng.choice(_IBAN_BANKS)
        bban = "".join(self.rng.choice(string.ascii_uppercase if c == "a" else string.digits) for c in layout)
        check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
        raw = f"{country}{check:02d}{bban}"
        return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4)) if spaced else raw

    def amount_minor(self) -> int:
        return self.rng.choice((self.rng.randint(50, 9_999), self.rng.randint(1_000, 99_999),
                                self.rng.randint(10_000, 2_500_000)))

    def money(self, minor: int | None = None) -> str:
        m = self.amount_minor() if minor is None else minor
        return f"{m // 100:,}.{m % 100:02d}"

    def masked_pan(self) -> str:
        last4 = self.digits(4)
        bin6 = self.rng.choice(("424242", "411111", "555555", "378282", "601111", "353011"))
        return self.rng.choice((f"{bin6}******{last4}", f"************{last4}", f"**** **** **** {last4}",
                                f"{bin6[:4]} {bin6[4:]}** **** {last4}", f"XXXX-XXXX-XXXX-{last4}"))

    # -- documents ------------------------------------------------------------------------------------

    def clean(self, make: Callable[[], str]) -> str:
        """``make()`` drawn again until no whole digit groups in it read as a Luhn-valid PAN."""
        while True:
            text = make()
            if not looks_like_pan(text):
                return text

    def sentence(self) -> str:
        r = self.rng
        cur = r.choice(_CURRENCIES)
        sym = _SYMBOLS.get(cur, "")
        amount = f"{sym}{self.money()}" if sym else f"{self.money()} {cur}"
        templates = (
            lambda: f"On {self.human_date()}, {r.choice(_MERCHANTS)} in {r.choice(_CITIES)} processed "
                    f"{r.randint(20, 9000):,} transactions totalling {amount}; {r.randint(1, 19)}.{r.randint(0, 9)} % "
                    f"were declined, mostly with {r.choice(_DECLINES)}.",
            lambda: f"Customer {self.name()} ({self.email(self.name())}, {self.phone()}) called about order "
                    f"ORD-{r.randint(2024, 2026)}-{self.digits(6)}: the charge of {amount} on {self.date()} appears twice.",
            lambda: f"The refund {self.token('re_', 14)} for {amount} was issued on {self.date()} and should "
                    f"settle within 5\u201310 business days.",
            lambda: f"The card ending {self.digits(4)} ({r.choice(_CARD_BRANDS)}, expires {r.randint(1, 12):02d}/"
                    f"{r.randint(26, 31)}) was updated by the account updater on {self.date()}.",
            lambda: f"Dispute dp_{self.token('', 16)} opened {self.date()}: reason code {r.choice(_REASONS)}, amount "
                    f"{amount}, evidence due by {self.date()}.",
            lambda: f"Payout {self.token('po_', 18)} of {amount} to IBAN {self.iban(spaced=True)} is scheduled for "
                    f"{self.date()}.",
            lambda: f"Release {r.randint(1, 9)}.{r.randint(0, 40)}.{r.randint(0, 12)} of the SDK fixes the retry "
                    f"logic; see ticket PAY-{r.randint(100, 9999)} and incident INC{self.digits(7)}.",
            lambda: f"The receipt shows the card as {self.masked_pan()}, which PCI DSS allows.",
            lambda: f"Terminal {self.token('T', 6).upper()} at store #{r.randint(1, 999)} in {r.choice(_CITIES)} "
                    f"reported {r.randint(1, 40)} offline transactions between {r.randint(0, 11):02d}:"
                    f"{r.randint(0, 59):02d} and {r.randint(12, 23):02d}:{r.randint(0, 59):02d} UTC.",
            lambda: f"Our support line {self.phone()} is open 8:00\u201318:00 CET; parcel 1Z{self.token('', 16).upper()} "
                    f"shipped on {self.date()}.",
            lambda: f"Merchant ID {self.digits(15)} settles to {self.iban(spaced=False)} in {cur}; the acquirer "
                    f"reference number of the last sale was {self.digits(23)}.",
            lambda: f"Interchange for {r.choice(_CARD_BRANDS)} consumer debit dropped to 0.{r.randint(1, 3)}% + "
                    f"{sym or cur + ' '}0.{r.randint(1, 30):02d} after {self.human_date()}.",
        )
        return self.clean(lambda: r.choice(templates)())

    def prose_doc(self, size: int) -> str:
        parts: list[str] = []
        total = 0
        while total < size:
            para = " ".join(self.sentence() for _ in range(self.rng.randint(3, 7)))
            parts.append(para)
            total += len(para) + 2
        return "\n\n".join(parts)

    def charge(self) -> dict[str, Any]:
        r = self.rng
        name = self.name()
        created = self.epoch()
        minor = self.amount_minor()
        status = r.choice(_STATUSES)
        cur = r.choice(_CURRENCIES).lower()
        return {
            "id": self.token("ch_"),
            "object": "charge",
            "amount": minor,
            "amount_captured": minor if status == "succeeded" else 0,
            "amount_refunded": minor if status == "refunded" else 0,
            "currency": cur,
            "created": created,
            "created_at": self.iso(created),
            "updated_at_ms": created * 1000 + r.randint(0, 999_999),
            "status": status,
            "failure_code": r.choice(_DECLINES) if status == "failed" else None,
            "customer": self.token("cus_", 14),
            "description": f"Order ORD-{r.randint(2024, 2026)}-{self.digits(6)} at {r.choice(_MERCHANTS)}",
            "receipt_number": f"{self.digits(4)}-{self.digits(4)}",
            "billing_details": {
                "name": name,
                "email": self.email(name),
                "phone": self.phone(),
                "address": {"city": r.choice(_CITIES), "postal_code": self.digits(5), "country": r.choice(_IBAN_BANKS)[0]},
            },
            "payment_method_details": {
                "type": "card",
                "card": {
                    "brand": r.choice(_CARD_BRANDS),
                    "last4": self.digits(4),
                    "exp_month": r.randint(1, 12),
                    "exp_year": r.randint(2026, 2032),
                    "fingerprint": self.token("", 16),
                    "checks": {"address_postal_code_check": "pass", "cvc_check": r.choice(("pass", "unchecked"))},
                    "network_transaction_id": self.digits(15),
                },
            },
            "merchant": {"id": self.digits(15), "name": r.choice(_MERCHANTS), "mcc": r.choice(("5411", "5812", "4722", "5999"))},
            "balance_transaction": self.token("txn_"),
            "metadata": {"order_id": self.uuid(), "cart_items": r.randint(1, 12), "coupon": r.choice(("", "BF2026", "WELCOME10"))},
            "acquirer_reference_number": self.digits(23),
            "risk": {"score": r.randint(0, 99), "level": r.choice(("normal", "elevated", "highest"))},
        }

    def charge_json(self, indent: int | None) -> tuple[dict[str, Any], str]:
        while True:
            charge = self.charge()
            text = json.dumps(charge, ensure_ascii=False, indent=indent)
            if not looks_like_pan(text):
                return charge, text

    def json_doc(self, size: int) -> str:
        records: list[str] = []
        total = 0
        indent = self.rng.choice((None, 2))
        while total < size:
            _, text = self.charge_json(indent)
            records.append(text)
            total += len(text) + 2
        sep = ",\n" if indent else ","
        return '{"object": "list", "url": "/v1/charges", "has_more": true, "data": [' + sep.join(records) + "]}"

    def log_line(self) -> str:
        r = self.rng
        ts = self.iso(ms=True)
        if r.random() < 0.3:
            ip = f"{r.choice((203, 198, 192))}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
            path = r.choice(_PATHS)
            return (f'{ip} - - [{time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.epoch()))}] "'
                    f'{r.choice(("GET", "POST"))} {path}?limit={r.randint(1, 100)} HTTP/1.1" {r.choice((200, 200, 201, 400, 402, 404, 500))} '
                    f'{r.randint(120, 90000)} "-" "{r.choice(_AGENTS)}" rt={r.random():.3f}')
        level = r.choice(("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"))
        event = r.choice((
            f"payment_intent.confirmed pi={self.token('pi_')} amount={self.amount_minor()} currency={r.choice(_CURRENCIES)}",
            f"http.request method=POST path={r.choice(_PATHS)} status={r.choice((200, 402, 429))} duration_ms={r.randint(3, 2400)}",
            f"webhook.delivered endpoint=we_{self.token('', 12)} attempt={r.randint(1, 5)} latency_ms={r.randint(20, 900)}",
            f"settlement.batch batch_id={self.digits(10)} count={r.randint(1, 5000)} total={self.money()} merchant={self.digits(15)}",
            f"risk.evaluated customer={self.token('cus_', 14)} score={r.randint(0, 99)} rule=velocity_{r.randint(1, 30)}",
            f"db.query table=charges rows={r.randint(0, 500)} took={r.random() * 50:.2f}ms",
        ))
        return (f"{ts} {level:<5} payments-api[{r.randint(1000, 65000)}] request_id=req_{self.token('', 14)} "
                f"trace_id={self.hexs(32)} span_id={self.hexs(16)} {event}")

    def log_doc(self, size: int) -> str:
        lines: list[str] = []
        total = 0
        while total < size:
            line = self.clean(self.log_line)
            lines.append(line)
            total += len(line) + 1
        return "\n".join(lines) + "\n"

    def csv_row(self) -> str:
        r = self.rng
        cur = r.choice(_CURRENCIES)
        gross = self.amount_minor()
        fee = gross * r.randint(14, 29) // 1000 + 25
        return ",".join((
            self.date(), self.digits(10), self.digits(15), f"T{self.digits(7)}", self.token("tx_", 16),
            self.money(gross).replace(",", ""), self.money(fee).replace(",", ""), cur, self.digits(6),
            self.digits(23), self.digits(4), r.choice(("SETTLED", "SETTLED", "CHARGEBACK", "REFUND")),
            f'"{r.choice(_MERCHANTS)}"',
        ))

    def csv_doc(self, size: int) -> str:
        lines = ["settlement_date,batch_id,merchant_id,terminal_id,transaction_id,gross,fee,currency,auth_code,"
                 "arn,card_last4,type,merchant_name"]
        total = len(lines[0])
        while total < size:
            line = self.clean(self.csv_row)
            lines.append(line)
            total += len(line) + 1
        return "\n".join(lines) + "\n"

    CLEAN_KINDS: Final = ("prose", "json", "log", "csv")

    def clean_docs(self, total_bytes: int) -> list[str]:
        """Documents of 32-128 KB, prose, JSON, logs and CSV in turn, up to ``total_bytes``."""
        makers = (self.prose_doc, self.json_doc, self.log_doc, self.csv_doc)  # as CLEAN_KINDS
        docs: list[str] = []
        total = 0
        while total < total_bytes:
            doc = makers[len(docs) % len(makers)](self.rng.randint(32_000, 128_000))
            docs.append(doc)
            total += len(doc.encode("utf-8"))
        return docs

    def tool_result(self, size: int = MESSAGE_BYTES) -> str:
        """A ``tools/call`` result of ~``size`` bytes: charges as JSON text and as ``structuredContent``."""
        records: list[dict[str, Any]] = []
        texts: list[str] = []
        total = 0
        while total < size:
            record, text = self.charge_json(indent=None)
            records.append(record)
            texts.append(text)
            total += 2 * len(text.encode("utf-8")) + 2  # once in the text item, once structured
        body = {
            "jsonrpc": "2.0",
            "id": 42,
            "result": {
                "content": [{"type": "text", "text": '{"charges": [' + ", ".join(texts) + "]}"}],
                "structuredContent": {"charges": records},
                "isError": False,
            },
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


# =========================================================================== card-dense text


@dataclass
class Truth:
    start: int
    end: int
    digits: str
    fmt: str
    brand: str
    doc: int = 0


def dense_doc(rng: random.Random, shape: str, rows: int = 2000) -> tuple[str, list[Truth]]:
    """A Markdown table or a CSV of ``rows`` orders with a Luhn-valid card in every row (~110 KB)."""
    g = Gen(rng.randrange(1 << 30))
    out: list[str] = []
    truths: list[Truth] = []
    offset = 0

    def add(text: str) -> None:
        nonlocal offset
        out.append(text)
        offset += len(text)

    if shape == "markdown":
        add("| # | customer | card | exp | amount |\n| ---: | --- | --- | --- | ---: |\n")
    else:
        add("n,customer,card,exp,amount,currency,status\n")
    for i in range(1, rows + 1):
        brand = pick_brand(rng)
        digits = make_pan(rng, brand)
        fmt = rng.choice(FORMATS)
        card = format_pan(digits, fmt)
        customer = f"{rng.choice(_FIRST)[0]}. {rng.choice(_LAST)}"
        exp = f"{rng.randint(1, 12):02d}/{rng.randint(26, 31)}"
        amount = g.money(g.amount_minor()).replace(",", "")
        if shape == "markdown":
            add(f"| {i} | {customer} | ")
            truths.append(Truth(offset, offset + len(card), digits, fmt, brand.name))
            add(f"{card} | {exp} | {amount} |\n")
        else:
            add(f"{i},{customer},")
            truths.append(Truth(offset, offset + len(card), digits, fmt, brand.name))
            add(f"{card},{exp},{amount},{rng.choice(_CURRENCIES)},{rng.choice(('ok', 'ok', 'refund', 'fail'))}\n")
    return "".join(out), truths


DENSE_SHAPES: Final = ("markdown", "csv")


def dense_docs(seed: int, total_bytes: int) -> tuple[list[str], list[Truth]]:
    rng = random.Random(seed)
    docs: list[str] = []
    truths: list[Truth] = []
    total = 0
    while total < total_bytes or len(docs) < 2:
        text, found = dense_doc(rng, DENSE_SHAPES[len(docs) % len(DENSE_SHAPES)])
        for t in found:
            t.doc = len(docs)
        docs.append(text)
        truths.extend(found)
        total += len(text.encode("utf-8"))
    return docs, truths


# =========================================================================== the workers

# A span: [start, end, kind, digits] (kind "pan" for Presidio's CREDIT_CARD).
Span = list[Any]


@dataclass
class Engine:
    name: str
    version: str
    how: str
    spans: Callable[[str], list[Span]]
    mask_text: Callable[[str], object]
    prepare_message: Callable[[str], object]
    mask_message: Callable[[object], int]  # -> number of findings / actions
    notes: list[str] = field(default_factory=list)


def _relay_engine() -> Engine:
    sys.path.insert(0, str(REPO_ROOT))
    from relay import __version__  # isort: split
    from relay.masking.detect import may_contain, scan

    def spans(text: str) -> list[Span]:
        return [[f.start, f.end, f.kind, f.digits] for f in scan(text)]

    try:
        from relay.jsonrpc import Direction, Message
        from relay.masking.mask import Masker, MaskPolicy
    except ImportError as exc:  # the masker is not there: time the detector alone
        def scan_only(text: str) -> object:
            return scan(text) if may_contain(text) else None

        def scan_message(obj: object) -> int:
            return sum(len(scan(s)) for s in _strings(obj) if may_contain(s))

        return Engine("relay", __version__, "may_contain + scan on each string (no Masker)", spans, scan_only,
                      json.loads, scan_message, [f"relay.masking.mask unavailable ({exc}): scan timed instead"])

    masker = Masker(MaskPolicy())

    def mask_text(text: str) -> object:
        # What the masker does to one string of a message (Masker._value): prefilter, then scan and replace.
        return masker.text(text, "", {}) if may_contain(text) else text

    def prepare(raw: str) -> object:
        return Message.parse(raw.encode("utf-8"), Direction.SERVER_TO_CLIENT)

    def mask_message(msg: object) -> int:
        assert isinstance(msg, Message)
        _, actions = masker.message(msg)
        return sum(int(a.get("count", 1)) for a in actions)

    return Engine("relay", __version__, "Masker(MaskPolicy()).message / may_contain + Masker.text", spans,
                  mask_text, prepare, mask_message)


def _strings(obj: object) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


def _presidio_engine() -> Engine:
    from importlib.metadata import version

    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    recognizer = CreditCardRecognizer()
    entities = ["CREDIT_CARD"]

    def spans(text: str) -> list[Span]:
        return [[r.start, r.end, PAN_KIND, "".join(str(int(c)) for c in text[r.start:r.end] if c.isdecimal())]
                for r in recognizer.analyze(text, entities, None)]

    def mask_text(text: str) -> object:
        return recognizer.analyze(text, entities, None)

    def mask_message(obj: object) -> int:
        return sum(len(recognizer.analyze(s, entities, None)) for s in _strings(obj))

    return Engine("presidio", version("presidio-analyzer"),
                  'CreditCardRecognizer().analyze(text, ["CREDIT_CARD"], None) on each string', spans, mask_text,
                  json.loads, mask_message, ["detection only: no replacement (presidio-anonymizer) is timed"])


def _time_passes(fn: Callable[[str], object], docs: list[str], reps: int) -> list[list[float]]:
    """Seconds per document, per timed pass (after one untimed pass)."""
    for doc in docs:
        fn(doc)
    clock = time.perf_counter
    passes = []
    for _ in range(reps):
        times = []
        for doc in docs:
            t0 = clock()
            fn(doc)
            times.append(clock() - t0)
        passes.append(times)
    return passes


def worker(kind: str, input_path: Path) -> dict[str, Any]:
    data = json.loads(input_path.read_text(encoding="utf-8"))
    engine = _relay_engine() if kind == "relay" else _presidio_engine()
    out: dict[str, Any] = {"engine": engine.name, "version": engine.version, "how": engine.how,
                           "notes": engine.notes, "python": sys.version.split()[0]}
    if data["want_spans"]:
        out["spans"] = {key: [engine.spans(t) for t in data[key]]
                        for key in ("card_corpus", "benign_corpus", "clean_docs", "dense_docs")}
    reps = int(data["reps"])
    out["clean_seconds"] = _time_passes(engine.mask_text, data["clean_docs"], reps)
    out["dense_seconds"] = _time_passes(engine.mask_text, data["dense_docs"], reps)

    raw = data["message"]
    t0 = time.perf_counter()
    message = engine.prepare_message(raw)
    out["message_parse_ms"] = (time.perf_counter() - t0) * 1e3
    out["message_findings"] = engine.mask_message(message)  # also the untimed warm-up
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < LATENCY_MAX_REPS and (
            len(latencies) < LATENCY_MIN_REPS or time.perf_counter() - started < LATENCY_MIN_SECONDS):
        t0 = time.perf_counter()
        engine.mask_message(message)
        latencies.append((time.perf_counter() - t0) * 1e3)
    out["message_ms"] = latencies
    return out


# =========================================================================== corpus and scoring


@dataclass
class Corpus:
    cards: list[tuple[str, list[str]]]
    benign: list[str]
    categories: list[str | None]  # per card text, when the corpus tags them
    source: str


def load_corpus() -> Corpus | str:
    """``tests/masking/corpus.py``'s corpora, or why they cannot be had."""
    if not CORPUS_FILE.exists():
        return f"{CORPUS_FILE.relative_to(REPO_ROOT)} does not exist"
    sys.path.insert(0, str(REPO_ROOT))
    spec = importlib.util.spec_from_file_location("relay_masking_corpus", CORPUS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        raw_cards = list(module.CARD_CORPUS)
        benign = [str(t) for t in module.BENIGN_CORPUS]
    except Exception as exc:  # whatever the corpus module raises: say so and go on
        return f"{CORPUS_FILE.relative_to(REPO_ROOT)} could not be loaded: {type(exc).__name__}: {exc}"
    cards: list[tuple[str, list[str]]] = []
    categories: list[str | None] = []
    for entry in raw_cards:
        category = None
        if isinstance(entry, dict):
            text, expected, category = entry["text"], entry["expected"], entry.get("category")
        elif len(entry) >= 3:
            text, expected, category = entry[0], entry[1], entry[2]
        else:
            text, expected = entry[0], entry[1]
        if category is None:
            category = getattr(entry, "category", None)
        cards.append((str(text), [str(e) for e in expected]))
        categories.append(None if category is None else str(category))
    return Corpus(cards, benign, categories, str(CORPUS_FILE.relative_to(REPO_ROOT)))


# Escapes that stand for one character: a JSON "\u0034" is the digit 4; "%20", "&#160;" are separators.
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|%[0-9a-fA-F]{2}|&#(?:[0-9]+|[xX][0-9a-fA-F]+);")


def _digit_view(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The digits of ``text`` (any script, and JSON \\u escapes of digits) with the span each is written in."""
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\\%&" and (m := _ESCAPE.match(text, i)):
            if m.group(1) is not None and chr(int(m.group(1), 16)).isdecimal():
                chars.append(str(int(chr(int(m.group(1), 16)))))
                spans.append((i, m.end()))
            i = m.end()
            continue
        if ch.isdecimal():
            chars.append(str(int(ch)))  # fullwidth and other decimal digits count as their value
            spans.append((i, i + 1))
        i += 1
    return "".join(chars), spans


_MAX_GAP = 6  # characters allowed between two digits of one written PAN ("&nbsp;", "%20%20", ...)

Occurrence = list[tuple[int, int]]  # the span of each digit of one written PAN


def locate(text: str, digits: str) -> list[Occurrence]:
    """Where ``digits`` is written in ``text``, separators and escapes allowed: each occurrence's digit spans."""
    flat, spans = _digit_view(text)
    found = []
    start = flat.find(digits)
    while start >= 0:
        end = start + len(digits)
        occurrence = spans[start:end]
        # Whole digit groups only: no digit glued on either side, and only short separators inside.
        if ((start == 0 or spans[start - 1][1] != occurrence[0][0])
                and (end == len(spans) or spans[end][0] != occurrence[-1][1])
                and all(b[0] - a[1] <= _MAX_GAP for a, b in itertools.pairwise(occurrence))):
            found.append(occurrence)
        start = flat.find(digits, start + 1)
    return found


def _chars(occurrence: Occurrence) -> list[int]:
    return [i for start, end in occurrence for i in range(start, end)]


class Coverage:
    """The characters that a list of spans covers, as merged intervals."""

    def __init__(self, spans: list[Span]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted((int(s[0]), int(s[1])) for s in spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [m[0] for m in merged]
        self._ends = [m[1] for m in merged]

    def covers(self, positions: list[int]) -> bool:
        for p in positions:
            k = bisect.bisect_right(self._starts, p) - 1
            if k < 0 or self._ends[k] <= p:
                return False
        return True


@dataclass
class ItemResult:
    text_index: int
    expected: str
    is_pan: bool
    caught: bool
    located: bool
    category: str


_GAP_NAMES: Final = {" ": "space", "-": "dash", ".": "dot", "+": "plus", "%20": "%20", "&nbsp;": "HTML entity",
                     "&#160;": "HTML entity", "\t": "tab", "\n": "newline"}


def written_form(text: str, occurrence: Occurrence) -> str:
    """How one occurrence of a PAN is written, for corpora that do not tag their entries.

    "contiguous", or the separators between its digit groups ("space", "dash", "Unicode space", ...), with
    "non-ASCII digits" and "glued to letters" (a letter, digit or "_" right before or after) added.
    """
    gaps = {text[a[1]:b[0]] for a, b in itertools.pairwise(occurrence) if b[0] > a[1]}
    names = set()
    for gap in gaps:
        if gap in _GAP_NAMES:
            names.add(_GAP_NAMES[gap])
        elif len(gap) == 1 and unicodedata.category(gap) in ("Zs", "Cf"):
            names.add("Unicode space")
        elif len(gap) == 1 and (unicodedata.category(gap) == "Pd" or gap == "\u2212"):
            names.add("Unicode dash")
        else:
            names.add("other separator")
    form = "+".join(sorted(names)) if names else "contiguous"
    if any(end - start > 1 for start, end in occurrence):
        form += ", JSON \\u escapes"
    elif any(not ("0" <= text[start] <= "9") for start, _ in occurrence):
        form += ", non-ASCII digits"
    first, last = occurrence[0][0], occurrence[-1][1]
    if _ESCAPE_BEFORE.search(text, 0, first) or _ESCAPE.match(text, last):
        form += ", next to a %XX/&#..; escape"
    else:
        before = text[first - 1] if first > 0 else " "
        after = text[last] if last < len(text) else " "
        if before.isalnum() or before == "_" or after.isalnum() or after == "_":
            form += ", glued to letters"
    return form


_ESCAPE_BEFORE: Final = re.compile(r"(?:%[0-9a-fA-F]{2}|&#(?:[0-9]+|[xX][0-9a-fA-F]+);|&[a-z]+;)$")


def score_corpus(corpus: Corpus, spans: list[list[Span]], engine: str) -> list[ItemResult]:
    results = []
    for i, ((text, expected), found) in enumerate(zip(corpus.cards, spans, strict=True)):
        kinds_found: dict[str, int] = {}
        for s in found:
            kinds_found[str(s[2])] = kinds_found.get(str(s[2]), 0) + 1
        for item in expected:
            if item.isdigit():
                occurrences = locate(text, item)
                if occurrences:
                    coverage = Coverage(found)
                    caught = all(coverage.covers(_chars(o)) for o in occurrences)
                    category = corpus.categories[i] or written_form(text, occurrences[0])
                else:  # written in a way the locator does not follow (JSON \u0034 escapes): compare digits
                    caught = any(item in str(s[3]) for s in found)
                    category = corpus.categories[i] or "not located"
                results.append(ItemResult(i, item, True, caught, bool(occurrences), category))
            else:
                # Track data, CVV, PIN: as many findings of that kind as the corpus expects.
                kind = item.lower()
                caught = engine == "relay" and kinds_found.get(kind, 0) > 0
                if caught:
                    kinds_found[kind] -= 1
                results.append(ItemResult(i, item, False, caught, True, corpus.categories[i] or kind))
    return results


def exact_matches(corpus: Corpus, spans: list[list[Span]]) -> int:
    """Texts whose findings are exactly the expected list (digits for a PAN, else the kind), in order."""
    return sum(1 for (_, expected), found in zip(corpus.cards, spans, strict=True)
               if [s[3] if s[2] == PAN_KIND else s[2] for s in found] == expected)


def _pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den else None


# =========================================================================== running and reporting


@dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stat:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))


def run_worker(engine: str, input_path: Path) -> dict[str, Any]:
    python = sys.executable if engine == "relay" else str(_presidio_python())
    command = [python, str(Path(__file__).resolve()), "--worker", engine, "--input", str(input_path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _fmt_stat(stat: Stat | None, unit: str, digits: int = 1) -> str:
    if stat is None:
        return "-"
    return f"{stat.median:,.{digits}f} {unit} ({stat.low:,.{digits}f}-{stat.high:,.{digits}f})"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("MET" if ok else "MISS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="fresh workers per engine (default 3)")
    parser.add_argument("--reps", type=int, default=3, help="timed passes over each text per round (default 3)")
    parser.add_argument("--clean-mb", type=float, default=10.0, help="MB of text without card data (default 10)")
    parser.add_argument("--dense-mb", type=float, default=3.0, help="MB of card-dense text (default 3)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated texts (default 2026)")
    parser.add_argument("--only", default=",".join(ENGINES), help="engines to run (default relay,presidio)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 when relay misses a target")
    parser.add_argument("--no-setup", action="store_true", help="do not install Presidio's venv")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        json.dump(worker(args.worker, args.input), sys.stdout)
        return 0

    engines = [e.strip() for e in args.only.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            parser.error(f"unknown engine {e!r} (choose from {', '.join(ENGINES)})")
    skipped: dict[str, str] = {}
    if "presidio" in engines and not args.no_setup:
        try:
            setup_presidio()
        except (SetupError, OSError) as exc:
            skipped["presidio"] = str(exc)
    if "presidio" in engines and not _presidio_python().exists():
        skipped.setdefault("presidio", f"{PRESIDIO_VENV} is missing (run without --no-setup)")

    corpus = load_corpus()
    if isinstance(corpus, str):
        _log(f"recall and false positives not measured: {corpus}")

    t0 = time.perf_counter()
    clean = Gen(args.seed).clean_docs(int(args.clean_mb * 1e6))
    dense, truths = dense_docs(args.seed + 1, int(args.dense_mb * 1e6))
    message = Gen(args.seed + 2).tool_result()
    texts = Texts(
        clean_sizes=[len(d.encode("utf-8")) for d in clean],
        clean_kinds=[Gen.CLEAN_KINDS[i % len(Gen.CLEAN_KINDS)] for i in range(len(clean))],
        dense_sizes=[len(d.encode("utf-8")) for d in dense],
        dense_kinds=[DENSE_SHAPES[i % len(DENSE_SHAPES)] for i in range(len(dense))],
        truths=truths, message_bytes=len(message.encode("utf-8")), seed=args.seed,
        clean_chains=sum(len(_LONG_CHAIN.findall(d)) for d in clean))
    _log(f"texts: {sum(texts.clean_sizes) / 1e6:.2f} MB in {len(clean)} documents without card data, "
         f"{sum(texts.dense_sizes) / 1e6:.2f} MB in {len(dense)} card-dense documents ({len(truths):,} cards), "
         f"{texts.message_bytes / 1e6:.3f} MB tool result; made in {time.perf_counter() - t0:.1f} s")

    results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines if e not in skipped}
    with tempfile.TemporaryDirectory(prefix="relay-masking-bench-") as tmp:
        base = {"card_corpus": [t for t, _ in corpus.cards] if isinstance(corpus, Corpus) else [],
                "benign_corpus": corpus.benign if isinstance(corpus, Corpus) else [],
                "clean_docs": clean, "dense_docs": dense, "message": message, "reps": args.reps}
        inputs = {}
        for want in (True, False):
            inputs[want] = Path(tmp) / f"input-{int(want)}.json"
            inputs[want].write_text(json.dumps({**base, "want_spans": want}, ensure_ascii=False), encoding="utf-8")
        order = list(results)
        for r in range(args.rounds):
            rotated = order[r % len(order):] + order[:r % len(order)] if order else []
            for engine in rotated:
                if engine in skipped:
                    continue
                t1 = time.perf_counter()
                try:
                    results[engine].append(run_worker(engine, inputs[r == 0]))
                except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                    skipped[engine] = str(exc)
                    results[engine] = []
                    continue
                _log(f"round {r + 1}/{args.rounds}: {engine} done in {time.perf_counter() - t1:.1f} s")

    report = build_report(results, skipped, corpus, texts, args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        _log(f"wrote {args.json}")
    if args.check:
        relay = report["engines"].get("relay")
        if relay is None or not all(v is True for v in relay["targets"].values()):
            return 1
    return 0


@dataclass
class Texts:
    clean_sizes: list[int]
    clean_kinds: list[str]
    dense_sizes: list[int]
    dense_kinds: list[str]
    truths: list[Truth]
    message_bytes: int
    seed: int
    clean_chains: int  # digit chains of 12+ digits (ids, timestamps, IBANs...) in the text without card data


# 12 or more digits, contiguous or in groups joined by one space or dash: what a card detector must look at.
_LONG_CHAIN: Final = re.compile(r"[0-9](?:[ -]?[0-9]){11,}")


def _mbps_by_kind(runs: list[dict[str, Any]], key: str, sizes: list[int], kinds: list[str]) -> dict[str, Any]:
    """MB/s per kind of document, one sample per timed pass."""
    out = {}
    for kind in dict.fromkeys(kinds):
        docs = [i for i, k in enumerate(kinds) if k == kind]
        size = sum(sizes[i] for i in docs)
        samples = [size / 1e6 / sum(p[i] for i in docs) for run in runs for p in run[key]]
        out[kind] = {"bytes": size, **vars(Stat.of(samples))}
    return out


def build_report(results: dict[str, list[dict[str, Any]]], skipped: dict[str, str], corpus: Corpus | str,
                 texts: Texts, args: argparse.Namespace) -> dict[str, Any]:
    truths = texts.truths
    clean_bytes, dense_bytes = sum(texts.clean_sizes), sum(texts.dense_sizes)
    report: dict[str, Any] = {
        "texts": {"clean_bytes": clean_bytes, "dense_bytes": dense_bytes, "dense_cards": len(truths),
                  "message_bytes": texts.message_bytes, "seed": texts.seed,
                  "clean_documents": len(texts.clean_sizes), "dense_documents": len(texts.dense_sizes),
                  "clean_digit_chains_12plus": texts.clean_chains},
        "corpus": corpus.source if isinstance(corpus, Corpus) else None,
        "corpus_problem": corpus if isinstance(corpus, str) else None,
        "corpus_texts": {"card": len(corpus.cards), "benign": len(corpus.benign)} if isinstance(corpus, Corpus) else None,
        "rounds": args.rounds, "reps": args.reps, "mb": "10^6 bytes of UTF-8",
        "skipped": skipped, "engines": {},
    }
    for engine, runs in results.items():
        if not runs:
            continue
        first = runs[0]
        spans = first["spans"]
        clean_mbps = [clean_bytes / 1e6 / sum(p) for run in runs for p in run["clean_seconds"]]
        dense_mbps = [dense_bytes / 1e6 / sum(p) for run in runs for p in run["dense_seconds"]]
        latency = [ms for run in runs for ms in run["message_ms"]]
        entry: dict[str, Any] = {
            "version": first["version"], "how": first["how"], "notes": first["notes"],
            "clean_mbps": vars(Stat.of(clean_mbps)), "dense_mbps": vars(Stat.of(dense_mbps)),
            "clean_mbps_by_kind": _mbps_by_kind(runs, "clean_seconds", texts.clean_sizes, texts.clean_kinds),
            "dense_mbps_by_kind": _mbps_by_kind(runs, "dense_seconds", texts.dense_sizes, texts.dense_kinds),
            "message_ms": vars(Stat.of(latency)),
            "message_parse_ms": vars(Stat.of([run["message_parse_ms"] for run in runs])),
            "message_findings": first["message_findings"],
            "clean_text_findings": sum(len(s) for s in spans["clean_docs"]),
            "clean_text_examples": _examples(spans["clean_docs"]),
        }
        # Card-dense text: exact truth from the generator.
        by_doc: list[list[Span]] = spans["dense_docs"]
        coverages = [Coverage(found) for found in by_doc]
        caught = [coverages[t.doc].covers(_truth_digit_positions(t)) for t in truths]
        entry["dense_recall"] = _breakdown(truths, caught)
        entry["dense_extra_findings"] = _extra_findings(truths, by_doc)
        if isinstance(corpus, Corpus):
            items = score_corpus(corpus, spans["card_corpus"], engine)
            pans = [i for i in items if i.is_pan]
            sad = [i for i in items if not i.is_pan]
            entry["recall_pan"] = {"caught": sum(i.caught for i in pans), "total": len(pans),
                                   "pct": _pct(sum(i.caught for i in pans), len(pans))}
            entry["recall_sad"] = {"caught": sum(i.caught for i in sad), "total": len(sad),
                                   "pct": _pct(sum(i.caught for i in sad), len(sad))} if engine == "relay" else None
            entry["recall_all"] = {"caught": sum(i.caught for i in items), "total": len(items),
                                   "pct": _pct(sum(i.caught for i in items), len(items))}
            cats: dict[str, list[bool]] = {}
            for i in items:
                cats.setdefault(i.category, []).append(i.caught)
            entry["recall_by_category"] = {c: {"caught": sum(v), "total": len(v)} for c, v in sorted(cats.items())}
            entry["unlocated_pans"] = sum(1 for i in pans if not i.located)
            entry["exact_texts"] = exact_matches(corpus, spans["card_corpus"])
            entry["misses"] = [{"text": i.text_index, "expected": i.expected, "category": i.category,
                                "excerpt": corpus.cards[i.text_index][0][:100]}
                               for i in items if not i.caught and (i.is_pan or engine == "relay")]
            benign = spans["benign_corpus"]
            entry["false_positives"] = sum(len(s) for s in benign)
            entry["false_positive_texts"] = sum(1 for s in benign if s)
            entry["false_positive_examples"] = [
                {"text": i, "span": s[:3], "excerpt": corpus.benign[i][max(0, s[0] - 20):s[1] + 20]}
                for i, found in enumerate(benign) for s in found][:20]
        report["engines"][engine] = entry
    relay = report["engines"].get("relay")
    if relay is not None:
        recall = relay.get("recall_all", {}).get("pct") if isinstance(corpus, Corpus) else None
        relay["targets"] = {
            "recall": None if recall is None else recall >= TARGET_RECALL,
            "false_positives": relay["false_positives"] <= TARGET_FALSE_POSITIVES if "false_positives" in relay else None,
            "clean_mbps": relay["clean_mbps"]["median"] >= TARGET_CLEAN_MBPS,
            "dense_mbps": relay["dense_mbps"]["median"] >= TARGET_DENSE_MBPS,
            "message_ms": relay["message_ms"]["median"] <= TARGET_LATENCY_MS,
        }
    return report


def _truth_digit_positions(t: Truth) -> list[int]:
    return [t.start + k for k, ch in enumerate(format_pan(t.digits, t.fmt)) if ch.isdigit()]


def _extra_findings(truths: list[Truth], spans_per_doc: list[list[Span]]) -> int:
    """Findings in the card-dense documents that overlap no generated card."""
    per_doc: dict[int, list[Truth]] = {}
    for t in truths:
        per_doc.setdefault(t.doc, []).append(t)
    extra = 0
    for doc, found in enumerate(spans_per_doc):
        cards = sorted(per_doc.get(doc, []), key=lambda t: t.start)
        starts = [t.start for t in cards]
        for s in found:
            k = bisect.bisect_right(starts, s[1] - 1) - 1  # the last card starting before the finding ends
            if k < 0 or cards[k].end <= s[0]:
                extra += 1
    return extra


def _breakdown(truths: list[Truth], caught: list[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {"caught": sum(caught), "total": len(truths), "pct": _pct(sum(caught), len(truths))}
    for key in ("fmt", "brand"):
        groups: dict[str, list[bool]] = {}
        for t, c in zip(truths, caught, strict=True):
            groups.setdefault(getattr(t, key), []).append(c)
        out["by_" + key] = {g: {"caught": sum(v), "total": len(v), "pct": _pct(sum(v), len(v))}
                            for g, v in groups.items()}
    return out


def _examples(spans_per_doc: list[list[Span]]) -> list[Span]:
    return [s[:3] for found in spans_per_doc for s in found][:10]


def print_report(report: dict[str, Any]) -> None:
    engines = report["engines"]
    names = list(engines)
    texts = report["texts"]
    presidio = engines.get("presidio")
    print()
    print("Masking benchmark: relay's masker vs Presidio's CreditCardRecognizer (regex + Luhn, no NLP model)")
    print(f"{report['rounds']} rounds x {report['reps']} passes; MB = 10^6 bytes of UTF-8; "
          "median (lowest-highest sample)")
    print(f"  text without card data: {texts['clean_documents']} documents, "
          f"{texts['clean_digit_chains_12plus'] / (texts['clean_bytes'] / 1e6):,.0f} digit chains of 12+ digits "
          f"per MB (ids, timestamps, IBANs); card-dense: {texts['dense_cards']:,} cards in "
          f"{texts['dense_documents']} documents")
    for name, entry in engines.items():
        print(f"  {name} {entry['version']}: {entry['how']}" + "".join(f"; {n}" for n in entry["notes"]))
    for name, why in report["skipped"].items():
        print(f"  {name}: NOT MEASURED: {why.splitlines()[0] if why else ''}")
    if report["corpus_problem"]:
        print(f"  recall and false positives not measured: {report['corpus_problem']}")
    print()

    rows: list[tuple[str, list[str], str, str]] = []

    def count(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return "n/a"
        pct = entry["pct"]
        return "-" if pct is None else f"{pct:.1f} % ({entry['caught']}/{entry['total']})"

    relay = engines.get("relay")
    targets = relay["targets"] if relay else {}
    if report["corpus"]:
        rows.append(("PAN recall, CARD_CORPUS", [count(engines[n].get("recall_pan")) for n in names], "100 %",
                     ""))
        rows.append(("track/CVV/PIN recall, CARD_CORPUS",
                     [count(engines[n].get("recall_sad")) if n == "relay" else "n/a (no recognizer)" for n in names],
                     "100 %", ""))
        rows.append(("recall, all of CARD_CORPUS", [count(engines[n].get("recall_all")) for n in names], "100 %",
                     _verdict(targets.get("recall"))))
        rows.append(("texts with exactly the expected findings",
                     [f"{engines[n]['exact_texts']}/{report['corpus_texts']['card']}" for n in names], "", ""))
        rows.append(("false positives, BENIGN_CORPUS",
                     [f"{engines[n]['false_positives']} in {engines[n]['false_positive_texts']}/"
                      f"{report['corpus_texts']['benign']} texts" for n in names], "0",
                     _verdict(targets.get("false_positives"))))
    rows.append((f"MB/s, no card data ({texts['clean_bytes'] / 1e6:.1f} MB)",
                 [_fmt_stat(Stat(**engines[n]["clean_mbps"]), "") for n in names], f">= {TARGET_CLEAN_MBPS:.0f}",
                 _verdict(targets.get("clean_mbps"))))
    rows.append((f"MB/s, card-dense ({texts['dense_bytes'] / 1e6:.1f} MB)",
                 [_fmt_stat(Stat(**engines[n]["dense_mbps"]), "") for n in names], f">= {TARGET_DENSE_MBPS:.0f}",
                 _verdict(targets.get("dense_mbps"))))
    rows.append((f"ms, {texts['message_bytes'] / 1e6:.2f} MB tool result",
                 [_fmt_stat(Stat(**engines[n]["message_ms"]), "", 2) for n in names], f"<= {TARGET_LATENCY_MS:.0f}",
                 _verdict(targets.get("message_ms"))))
    rows.append(("ms to parse that message (not in the above)",
                 [_fmt_stat(_stat(engines[n]["message_parse_ms"]), "", 2) for n in names], "", ""))
    rows.append(("recall, card-dense text", [count(engines[n]["dense_recall"]) for n in names], "", ""))
    rows.append(("findings, text without card data", [str(engines[n]["clean_text_findings"]) for n in names], "", ""))
    rows.append(("findings, 1 MB tool result", [str(engines[n]["message_findings"]) for n in names], "", ""))
    rows.append(("other findings, card-dense text", [str(engines[n]["dense_extra_findings"]) for n in names], "",
                 ""))
    _table(["", *names, "relay's target", "relay"], [[r[0], *r[1], r[2], r[3]] for r in rows])

    print()
    print("MB/s by kind of document:")
    kinds = [("clean", k) for k in engines[names[0]]["clean_mbps_by_kind"]] + \
            [("dense", k) for k in engines[names[0]]["dense_mbps_by_kind"]]
    _table(["", *names], [[f"{'no card data' if w == 'clean' else 'card-dense'}, {k} "
                           f"({engines[names[0]][w + '_mbps_by_kind'][k]['bytes'] / 1e6:.1f} MB)",
                           *[_fmt_stat(_stat(engines[n][w + "_mbps_by_kind"][k]), "")
                             for n in names]] for w, k in kinds])
    print()
    print("Card-dense text, recall by format and by brand:")
    keys = [("fmt", f) for f in FORMATS] + [("brand", b.name) for b in BRANDS]
    _table(["", *names], [[v, *[count(engines[n]["dense_recall"]["by_" + k].get(v)) for n in names]]
                          for k, v in keys])
    if report["corpus"] and len({c for e in engines.values() for c in e["recall_by_category"]}) > 1:
        print()
        print("CARD_CORPUS, recall by category:")
        cats = sorted({c for e in engines.values() for c in e["recall_by_category"]})
        _table(["", *names], [[c, *[_frac(engines[n]["recall_by_category"].get(c)) for n in names]] for c in cats])
    if relay and report["corpus"]:
        for label, entries in (("relay missed", relay["misses"]),
                               ("relay's false positives", relay["false_positive_examples"])):
            if entries:
                print(f"\n{label} (first 10):")
                for e in entries[:10]:
                    print(f"  {e}")
    if presidio is not None and report["corpus"]:
        print(f"\nPresidio missed {len(presidio['misses'])} PANs of CARD_CORPUS; "
              f"{presidio['false_positives']} false positives on BENIGN_CORPUS.")


def _stat(entry: dict[str, Any]) -> Stat:
    return Stat(entry["median"], entry["low"], entry["high"], entry["n"])


def _frac(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    return f"{100 * entry['caught'] / entry['total']:.0f} % ({entry['caught']}/{entry['total']})" if entry["total"] else "-"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for k, row in enumerate([header, *rows]):
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
