"""How found card data is shown: last4 and bin_last4 keep the writing, token is keyed, SAD is gone entirely."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.masking.modes import mask_pan, pan_token, redact_sad


def test_last4_keeps_length_and_separators() -> None:
    assert mask_pan("4111 1111 1111 1111", "4111111111111111", "last4") == "**** **** **** 1111"
    assert mask_pan("378282246310005", "378282246310005", "last4") == "***********0005"


def test_bin_last4_shows_at_most_the_first_six_and_last_four() -> None:
    assert mask_pan("4111-1111-1111-1111", "4111111111111111", "bin_last4") == "4111-11**-****-1111"


def test_last4_on_unicode_digits_keeps_their_script() -> None:
    arabic = {d: chr(0x660 + d) for d in range(10)}  # Arabic-Indic digits
    original = "".join(arabic[int(c)] for c in "4111111111111111")
    assert mask_pan(original, "4111111111111111", "last4") == "*" * 12 + arabic[1] * 4


def test_token_is_keyed_stable_and_tells_cards_apart() -> None:
    key, other_key = b"k" * 32, b"x" * 32
    a = mask_pan("4111111111111111", "4111111111111111", "token", key)
    assert a == mask_pan("4111 1111 1111 1111", "4111111111111111", "token", key)
    assert a.startswith("[card ****1111 tok_") and "4111111111111111" not in a
    assert a != mask_pan("4242424242424242", "4242424242424242", "token", key)
    assert pan_token("4111111111111111", key) != pan_token("4111111111111111", other_key)


def test_redact_and_sad() -> None:
    assert mask_pan("4111111111111111", "4111111111111111", "redact") == "[PAN REDACTED]"
    assert redact_sad("cvv") == "[CVV REDACTED]"
    assert redact_sad("track2") == "[TRACK DATA REDACTED]"


def _stars_except(original: str, keep: set[int]) -> str:
    """Every decimal digit starred but the n-th ones in `keep` (the rule, written out plainly)."""
    out, n = [], 0
    for ch in original:
        out.append(ch if not ch.isdecimal() or n in keep else "*")
        n += ch.isdecimal()
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(digits=st.text("0123456789", min_size=12, max_size=19),
       seps=st.lists(st.sampled_from(["", "", " ", "-", ".", "%20", "&#160;", "\u00a0", "\u2009"]), min_size=19,
                     max_size=19))  # fmt: skip
def test_last4_and_bin_last4_star_every_digit_but_the_shown_ones(digits: str, seps: list[str]) -> None:
    original = digits[0] + "".join(sep + d for sep, d in zip(seps, digits[1:], strict=False))
    count = len(digits)
    assert mask_pan(original, digits, "last4") == _stars_except(original, set(range(count - 4, count)))
    assert mask_pan(original, digits, "bin_last4") == _stars_except(original, {*range(6), *range(count - 4, count)})
