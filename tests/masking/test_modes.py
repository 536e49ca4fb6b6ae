"""How found card data is shown: last4 and bin_last4 keep the writing, token is keyed, SAD is gone entirely."""

from __future__ import annotations

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
