"""Issuer identification number (IIN) ranges and PAN lengths of the card brands relay detects.

This is data, kept in one place so that a reviewer can check it against its sources:

- Wikipedia, "Payment card number", table "Issuer identification number (IIN)"
  (https://en.wikipedia.org/wiki/Payment_card_number#Issuer_identification_number_(IIN)), ISO/IEC 7812.
- Braintree, credit-card-type, src/lib/card-types.ts (https://github.com/braintree/credit-card-type),
  the table behind Braintree's own card forms.
- CyberSource, "Card Type Identification" in the test-data guide
  (https://developer.cybersource.com/docs/cybs/en-us/test-data/developer/all/so/test-data/best_practices_intro/card_type_id.html).

Where the sources disagree the table mostly takes the union, because a card relay fails when it leaks one
card number: Maestro is "50, 56-69" (CyberSource; Adyen's Maestro test cards 6000 0707 ... and 6799 9989 ...
need it), not only Wikipedia's nine 4-digit prefixes. Left out on purpose, because a false positive
corrupts data: JCB's obsolete 1800 and 2131 (1800 would turn 19-digit Twitter/X ids and 2027+ nanosecond
timestamps into cards), and Visa lengths 14, 15 and 17 (CyberSource says "up to 19"; Wikipedia and
Braintree list 13, 16, 18, 19; 15-digit IMEIs, Luhn-valid by design, start with 44, 45 or 49).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IinRange:
    brand: str
    low: str  # inclusive prefix; low and high have the same number of digits
    high: str  # inclusive prefix
    lengths: frozenset[int]  # valid PAN lengths for numbers in this range


def _lengths(low: int, high: int) -> frozenset[int]:
    return frozenset(range(low, high + 1))


_16 = frozenset({16})
_15 = frozenset({15})

RANGES: tuple[IinRange, ...] = (
    # Visa: Wikipedia 13, 16, 19; Braintree adds 18.
    IinRange("visa", "4", "4", frozenset({13, 16, 18, 19})),
    IinRange("mastercard", "51", "55", _16),
    IinRange("mastercard", "2221", "2720", _16),
    IinRange("amex", "34", "34", _15),
    IinRange("amex", "37", "37", _15),
    IinRange("discover", "6011", "6011", _lengths(16, 19)),
    IinRange("discover", "644", "649", _lengths(16, 19)),
    IinRange("discover", "65", "65", _lengths(16, 19)),
    IinRange("discover", "622126", "622925", _lengths(16, 19)),
    IinRange("jcb", "3528", "3589", _lengths(16, 19)),
    # UnionPay: Wikipedia 62 (16-19); Braintree 62 and 81 (8100-8171), 14-19.
    IinRange("unionpay", "62", "62", _lengths(14, 19)),
    IinRange("unionpay", "8100", "8171", _lengths(14, 19)),
    # Diners Club International and Carte Blanche (Discover network): 14-19 covers Wikipedia and Braintree.
    IinRange("diners", "300", "305", _lengths(14, 19)),
    IinRange("diners", "3095", "3095", _lengths(14, 19)),
    IinRange("diners", "36", "36", _lengths(14, 19)),
    IinRange("diners", "38", "39", _lengths(14, 19)),
    # Maestro: CyberSource 50, 56-64, 66-69 (65 is Discover's, but Maestro lengths cover it too).
    IinRange("maestro", "50", "50", _lengths(12, 19)),
    IinRange("maestro", "56", "69", _lengths(12, 19)),
)

MIN_LENGTH = min(min(r.lengths) for r in RANGES)
MAX_LENGTH = max(max(r.lengths) for r in RANGES)
