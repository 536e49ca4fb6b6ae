"""Fake fixtures for the demo payments server.

Everything here is invented. Card numbers are the card brands' and payment
processors' PUBLISHED TEST numbers (they pass the Luhn check, so masking has
to catch them, but they can never move money). Names are historical computer
scientists, e-mail addresses use the reserved ``example.*`` domains, and phone
numbers use the fictional 555-01xx range.

The data is deliberately full of cardholder data (PAN, expiry, CVV, a Track 2
string) because the demo exists to show the relay masking it.

Standard library only, and no imports at all: this module is loaded on the
demo server's start-up path.
"""

from __future__ import annotations

from typing import Any, Final

# Customers, keyed by id. ``card.number`` is the PAN as stored (contiguous digits).
CUSTOMERS: Final[dict[str, dict[str, Any]]] = {
    "cus_001": {
        "id": "cus_001",
        "name": "Ada Lovelace",
        "email": "ada.lovelace@example.com",
        "phone": "+1-555-0101",
        "billing_address": {
            "line1": "12 Analytical Way",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "card": {
            "brand": "Visa",
            "number": "4111111111111111",
            "exp_month": 12,
            "exp_year": 2029,
            "cvv": "123",
        },
        "created": "2024-02-11",
    },
    "cus_002": {
        "id": "cus_002",
        "name": "Alan Turing",
        "email": "alan.turing@example.org",
        "phone": "+1-555-0102",
        "billing_address": {
            "line1": "1 Bletchley Lane",
            "city": "Milton Keynes",
            "postal_code": "MK3 6EB",
            "country": "GB",
        },
        "card": {
            "brand": "Visa",
            "number": "4242424242424242",
            "exp_month": 6,
            "exp_year": 2030,
            "cvv": "424",
        },
        "created": "2024-03-02",
    },
    "cus_003": {
        "id": "cus_003",
        "name": "Grace Hopper",
        "email": "grace.hopper@example.net",
        "phone": "+1-555-0103",
        "billing_address": {
            "line1": "99 Compiler Court",
            "city": "Arlington",
            "postal_code": "22201",
            "country": "US",
        },
        "card": {
            "brand": "Mastercard",
            "number": "5555555555554444",
            "exp_month": 3,
            "exp_year": 2028,
            "cvv": "737",
        },
        "created": "2024-04-18",
    },
    "cus_004": {
        "id": "cus_004",
        "name": "Katherine Johnson",
        "email": "katherine.johnson@example.com",
        "phone": "+1-555-0104",
        "billing_address": {
            "line1": "7 Trajectory Road",
            "city": "Hampton",
            "postal_code": "23666",
            "country": "US",
        },
        "card": {
            "brand": "Mastercard",
            "number": "2223003122003222",
            "exp_month": 9,
            "exp_year": 2031,
            "cvv": "256",
        },
        "created": "2024-06-30",
    },
    "cus_005": {
        "id": "cus_005",
        "name": "Edsger Dijkstra",
        "email": "edsger.dijkstra@example.org",
        "phone": "+1-555-0105",
        "billing_address": {
            "line1": "3 Shortest Path",
            "city": "Austin",
            "postal_code": "78712",
            "country": "US",
        },
        "card": {
            "brand": "American Express",
            "number": "378282246310005",
            "exp_month": 1,
            "exp_year": 2030,
            "cvv": "1234",
        },
        "created": "2024-08-09",
    },
    "cus_006": {
        "id": "cus_006",
        "name": "Radia Perlman",
        "email": "radia.perlman@example.net",
        "phone": "+1-555-0106",
        "billing_address": {
            "line1": "802 Spanning Tree Ave",
            "city": "Seattle",
            "postal_code": "98101",
            "country": "US",
        },
        "card": {
            "brand": "Discover",
            "number": "6011111111111117",
            "exp_month": 11,
            "exp_year": 2028,
            "cvv": "987",
        },
        "created": "2024-10-21",
    },
}

# Orders, in display order. Amounts are integer minor units (cents). ``card_number``
# is the PAN exactly as the "processor" gave it to us. ``refunded_cents`` is the
# starting state; the server keeps its own mutable copy.
ORDERS: Final[list[dict[str, Any]]] = [
    {
        "id": "ord_1001",
        "customer_id": "cus_001",
        "amount_cents": 12999,
        "currency": "USD",
        "status": "captured",
        "created": "2025-01-14T09:12:00Z",
        "description": "Difference Engine starter kit",
        "card_number": "4111111111111111",
        "entry_mode": "ecommerce",
        "refunded_cents": 0,
    },
    {
        "id": "ord_1002",
        "customer_id": "cus_002",
        "amount_cents": 4200,
        "currency": "USD",
        "status": "captured",
        "created": "2025-01-15T14:40:00Z",
        "description": "Enigma rotor (replica)",
        "card_number": "4242424242424242",
        "entry_mode": "ecommerce",
        "refunded_cents": 0,
    },
    {
        "id": "ord_1003",
        "customer_id": "cus_003",
        "amount_cents": 249900,
        "currency": "USD",
        "status": "captured",
        "created": "2025-01-17T11:05:00Z",
        "description": "COBOL mainframe time (1 year)",
        "card_number": "5555555555554444",
        "entry_mode": "ecommerce",
        "refunded_cents": 0,
    },
    {
        "id": "ord_1004",
        "customer_id": "cus_004",
        "amount_cents": 1850,
        "currency": "EUR",
        "status": "captured",
        "created": "2025-01-20T16:22:00Z",
        "description": "Orbital mechanics workbook",
        "card_number": "2223003122003222",
        "entry_mode": "ecommerce",
        "refunded_cents": 0,
    },
    {
        "id": "ord_1005",
        "customer_id": "cus_005",
        "amount_cents": 31025,
        "currency": "USD",
        "status": "captured",
        "created": "2025-01-22T08:47:00Z",
        "description": "Structured programming seminar",
        "card_number": "378282246310005",
        "entry_mode": "ecommerce",
        "refunded_cents": 0,
    },
    {
        "id": "ord_1006",
        "customer_id": "cus_006",
        "amount_cents": 7500,
        "currency": "USD",
        "status": "refunded",
        "created": "2025-01-23T19:30:00Z",
        "description": "Spanning-tree poster",
        "card_number": "6011111111111117",
        "entry_mode": "ecommerce",
        "refunded_cents": 7500,
    },
    {
        # Card-present swipe: the magnetic-stripe Track 2 data was (wrongly) kept.
        "id": "ord_1007",
        "customer_id": "cus_001",
        "amount_cents": 1275,
        "currency": "USD",
        "status": "captured",
        "created": "2025-01-24T12:03:00Z",
        "description": "Cafe purchase (in store)",
        "card_number": "4111111111111111",
        "entry_mode": "swipe",
        "refunded_cents": 0,
        "track2": ";4111111111111111=29121010000012300000?",
    },
    {
        "id": "ord_1008",
        "customer_id": "cus_003",
        "amount_cents": 6400,
        "currency": "USD",
        "status": "authorized",
        "created": "2025-01-25T10:15:00Z",
        "description": "Nanosecond wire (pack of 10)",
        "card_number": "5555555555554444",
        "entry_mode": "ecommerce",
        "refunded_cents": 0,
    },
]

REFUND_POLICY: Final[str] = """\
# Refund policy (demo)

- Refunds go back to the original card; partial refunds are allowed.
- The total refunded can never exceed the captured amount.
- Orders that are only `authorized` cannot be refunded (void them instead).
- Every refund needs a reason, and in production a second person's approval.
"""


def group_pan(pan: str, sep: str = " ") -> str:
    """Format a PAN in the usual groups: 4-6-5 for 15-digit Amex, 4-4-4-4(-...) otherwise."""
    digits = "".join(ch for ch in pan if ch.isdigit())
    if len(digits) == 15 and digits[:2] in ("34", "37"):
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return sep.join(groups)


def expiry(card: dict[str, Any]) -> str:
    """MM/YY expiry string."""
    return f"{card['exp_month']:02d}/{card['exp_year'] % 100:02d}"


def decimal_amount(cents: int) -> str:
    """``12999`` -> ``"129.99"``; ``-500`` -> ``"-5.00"`` (no thousands separators)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def money(cents: int, currency: str) -> str:
    """``249900, "USD"`` -> ``"2,499.00 USD"`` (for human-readable text)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100:,}.{cents % 100:02d} {currency}"
