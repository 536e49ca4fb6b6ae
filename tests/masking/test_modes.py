"""How found card data is shown: last4 and bin_last4 keep the writing, token is keyed, SAD is gone entirely."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.masking.detect import scan
from relay.masking.modes import mask_pan, mask_pans_last4, pan_token, redact_sad
from tests.masking.corpus import generated_pans, grouped


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
    """Every decimal digit of the card starred but the n-th ones in `keep` (the rule, written out plainly); the
    separators %20 and &#160; are not the card's digits and stay as they are."""
    out, n, i = [], 0, 0
    while i < len(original):
        for escape in ("%20", "&#160;"):
            if original.startswith(escape, i):
                out.append(escape)
                i += len(escape)
                break
        else:
            ch = original[i]
            out.append(ch if not ch.isdecimal() or n in keep else "*")
            n += ch.isdecimal()
            i += 1
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


_FILLER = st.text(st.sampled_from("ab |,;:\n\u00e9\u4e00"), max_size=8)


@settings(max_examples=300, deadline=None)
@given(cards=st.lists(st.tuples(st.sampled_from(sorted(set(generated_pans()))), st.lists(st.integers(1, 6)),
                                st.sampled_from([" ", "-", ".", "+"]), _FILLER), min_size=1, max_size=8))  # fmt: skip
def test_pans_masked_all_at_once_as_one_by_one(cards: list[tuple[str, list[int], str, str]]) -> None:
    text = "".join(f"{filler}{grouped(pan, [4, *sizes], sep)}" for pan, sizes, sep, filler in cards) + " end"
    found = scan(text)
    one_by_one, last = [], 0
    for start, end, kind, digits in found:
        one_by_one += [text[last:start], mask_pan(text[start:end], digits, "last4") if kind == "pan" else "?"]
        last = end
    expected = "".join([*one_by_one, text[last:]])
    masked = mask_pans_last4(text, found)
    assert masked in (expected, None)
    # Masked all at once unless a finding is no PAN or its span holds other digits (a merged candidate).
    plain = all(f.kind == "pan" and sum(map(str.isdecimal, text[f.start : f.end])) == len(f.digits)
                for f in found)  # fmt: skip
    assert (masked is not None) == plain


def test_pans_are_masked_one_by_one_when_a_span_holds_other_digits() -> None:
    for text, digits in [
        ("card 4111%201111%201111%201111 ok", "4111111111111111"),  # %20 holds digits
        ("card 4111&#160;1111&#160;1111&#160;1111", "4111111111111111"),
        ("ids 3000 4111 1111 1111 1111 ok", "4111111111111111"),  # a merged candidate
        ("card \u0664\u0661\u0661\u0661111111111111", "4111111111111111"),  # Arabic-Indic digits in the head
    ]:
        [f] = scan(text)
        assert f.digits == digits
        assert mask_pans_last4(text, [f]) is None
    assert mask_pans_last4("t ;4111111111111111=2912101?", scan("t ;4111111111111111=2912101?")) is None


@pytest.mark.parametrize(("original", "last4", "bin_last4"), [
    ("4242%204242%204242%204242", "****%20****%20****%204242", "4242%2042**%20****%204242"),
    ("4242&#160;4242&#160;4242&#160;4242", "****&#160;****&#160;****&#160;4242", "4242&#160;42**&#160;****&#160;4242"),
    ("4242&#xA0;4242&nbsp;4242&#xa0;4242", "****&#xA0;****&nbsp;****&#xa0;4242", "4242&#xA0;42**&nbsp;****&#xa0;4242"),
])
def test_escaped_separators_stay_whole_and_the_right_digits_are_kept(original: str, last4: str, bin_last4: str) -> None:
    # The digits of %20 or &#160; are not the card's: they stay as written, and the card's own last four show.
    assert mask_pan(original, "4242424242424242", "last4") == last4
    assert mask_pan(original, "4242424242424242", "bin_last4") == bin_last4
