"""Masking whole JSON-RPC messages: every place card data can hide, and nothing else touched."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.jsonrpc import Direction, Message
from relay.masking.detect import sensitive_key
from relay.masking.mask import CustomRule, Masker, MaskPolicy, normalise_key
from relay.masking.modes import redact_sad

S2C = Direction.SERVER_TO_CLIENT
PAN = "4111111111111111"
MASKED = "************1111"


def masked(obj: Any, policy: MaskPolicy | None = None) -> tuple[Any, list[dict[str, Any]]]:
    msg = Message.build(obj, S2C)
    out, actions = Masker(policy or MaskPolicy()).message(msg)
    assert PAN not in out.raw.decode()
    return out.obj, actions


def result(content: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": content}


def test_untouched_messages_are_the_same_object_and_bytes() -> None:
    msg = Message.parse(b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"order 42, 12.50 USD"}]}}', S2C)
    out, actions = Masker(MaskPolicy()).message(msg)
    assert out is msg and actions == []


def test_tool_text_structured_content_and_reported_actions() -> None:
    obj, actions = masked(result({"content": [{"type": "text", "text": f"card {PAN} ok"}],
                                  "structuredContent": {"card": PAN, "amount": 12.5}}))
    assert obj["result"]["content"][0]["text"] == f"card {MASKED} ok"
    assert obj["result"]["structuredContent"] == {"card": MASKED, "amount": 12.5}
    assert {"rule": "pan", "pointer": "/result/content/0/text", "count": 1} in actions
    assert {"rule": "pan", "pointer": "/result/structuredContent/card", "count": 1} in actions
    assert PAN not in json.dumps(actions)


def test_a_pan_as_a_json_number_becomes_a_masked_string() -> None:
    obj, _ = masked(result({"structuredContent": {"card": 4111111111111111, "ts": 1732406400000}}))
    assert obj["result"]["structuredContent"] == {"card": MASKED, "ts": 1732406400000}


def test_a_pan_as_an_object_key() -> None:
    obj, _ = masked(result({"structuredContent": {PAN: {"status": "active"}}}))
    assert obj["result"]["structuredContent"] == {MASKED: {"status": "active"}}


@pytest.mark.parametrize("key", ["cvv", "card_cvc", "securityCode", "CVV2", "pin", "pinBlock"])
def test_sad_keys_lose_their_values_entirely(key: str) -> None:
    obj, actions = masked(result({"structuredContent": {key: "123", "other": "123"}}))
    value = obj["result"]["structuredContent"][key]
    assert "123" not in value and "REDACTED" in value
    assert obj["result"]["structuredContent"]["other"] == "123"
    assert actions[0]["rule"] in ("cvv", "pin")


def test_text_like_blobs_are_decoded_masked_and_encoded_again() -> None:
    blob = base64.b64encode(f"id,card\n1,{PAN}\n".encode()).decode()
    image = base64.b64encode(PAN.encode()).decode()  # an image's bytes are not text: left as they are
    obj, _ = masked(result({"contents": [{"uri": "file:///x.csv", "mimeType": "text/csv", "blob": blob},
                                         {"uri": "file:///x.png", "mimeType": "image/png", "blob": image}]}))
    assert base64.b64decode(obj["result"]["contents"][0]["blob"]).decode() == f"id,card\n1,{MASKED}\n"
    assert obj["result"]["contents"][1]["blob"] == image


@pytest.mark.parametrize("message", [
    {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "t", "description": f"e.g. {PAN}", "inputSchema": {}}]}},
    {"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18", "instructions": f"test card {PAN}"}},
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": f"declined {PAN}", "data": {"pan": PAN}}},
    {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": f"charged {PAN}"}},
    {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 7, "progress": 1, "message": PAN}},
    {"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage",
     "params": {"messages": [{"role": "user", "content": {"type": "text", "text": PAN}}], "maxTokens": 5}},
    {"jsonrpc": "2.0", "id": 9, "method": "elicitation/create", "params": {"message": f"confirm {PAN}?"}},
    {"jsonrpc": "2.0", "id": 1, "result": {"resultType": "input_required", "inputRequests": {
        "k": {"method": "elicitation/create", "params": {"message": f"card {PAN}?"}}}}},
    {"jsonrpc": "2.0", "id": 1, "result": {"messages": [{"role": "user", "content": {"type": "resource",
     "resource": {"uri": "x", "text": PAN}}}]}},
])
def test_every_message_kind_is_masked(message: dict[str, Any]) -> None:
    masked(message)


def test_protocol_fields_are_never_rewritten() -> None:
    big_id = 4111111111111111  # a Luhn-valid id: correlation must survive
    masker = Masker(MaskPolicy())
    out, _ = masker.message(Message.build({"jsonrpc": "2.0", "id": big_id, "result": {"text": PAN}}, S2C))
    assert out.obj == {"jsonrpc": "2.0", "id": big_id, "result": {"text": MASKED}}
    out, _ = masker.message(Message.build({"jsonrpc": "2.0", "method": "notifications/progress",
                                           "params": {"progressToken": big_id, "progress": 1, "message": PAN}}, S2C))
    assert out.obj["params"] == {"progressToken": big_id, "progress": 1, "message": MASKED}


def test_batches_are_masked_item_by_item() -> None:
    obj, _ = masked([result({"text": PAN}), {"jsonrpc": "2.0", "id": 2, "result": {}}])
    assert obj[0]["result"]["text"] == MASKED and obj[1] == {"jsonrpc": "2.0", "id": 2, "result": {}}


def test_custom_regex_and_key_rules() -> None:
    policy = MaskPolicy(rules=(
        CustomRule(name="account", replace="[ACCOUNT]", pattern=re.compile(r"\bACCT-\d{8}\b")),
        CustomRule(name="national_id", replace="[NATIONAL ID]", keys=frozenset({normalise_key("national_id")})),
    ))
    obj, actions = masked(result({"text": "ACCT-12345678 and ACCT-1", "person": {"nationalId": "AB123456C"}}), policy)
    assert obj["result"]["text"] == "[ACCOUNT] and ACCT-1"
    assert obj["result"]["person"]["nationalId"] == "[NATIONAL ID]"
    assert {a["rule"] for a in actions} == {"account", "national_id"}


def test_modes_reach_the_text() -> None:
    obj, _ = masked(result({"text": PAN}), MaskPolicy(pan_mode="bin_last4"))
    assert obj["result"]["text"] == "411111******1111"
    obj, _ = masked(result({"text": PAN}), MaskPolicy(pan_mode="token", token_key=b"k" * 32))
    assert obj["result"]["text"].startswith("[card ****1111 tok_")


def test_the_message_prefilter_lets_every_sensitive_key_through() -> None:
    from relay.masking import detect
    from relay.masking.mask import _sad_key_hint

    forms = set(detect._CVV_FORMS) | set(detect._PIN_FORMS) | set(detect._WEAK_CVV_FORMS)
    assert forms
    for form in forms:
        for key in (form, form.upper(), f"card_{form}", f"credit{form.capitalize()}"):
            if detect.sensitive_key(key) is not None:
                assert _sad_key_hint(key), key


@pytest.mark.parametrize("text", [
    "card 4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
    "card 4111\u20091111\u20091111\u20091111",  # thin spaces
    "card " + "".join(chr(0x9E6 + int(d)) for d in PAN),  # Bengali digits
])
def test_cards_behind_json_unicode_escapes_are_masked(text: str) -> None:
    # json.dumps writes every non-ASCII character as \uXXXX: the card is only whole in the parsed string.
    raw = json.dumps(result({"content": [{"type": "text", "text": text}]})).encode()
    assert b"\\u" in raw
    out, actions = Masker(MaskPolicy()).message(Message.parse(raw, S2C))
    assert actions == [{"rule": "pan", "pointer": "/result/content/0/text", "count": 1}]
    assert out.obj["result"]["content"][0]["text"].count("*") == 12


def test_numbers_that_are_not_cards_keep_their_type() -> None:
    obj, _ = masked(result({"text": PAN, "big": 123456789012.0, "ts": 1732406400000}))
    assert obj["result"] == {"text": MASKED, "big": 123456789012.0, "ts": 1732406400000}
    assert isinstance(obj["result"]["big"], float)


# Texts made of the pieces that matter to the detectors, and JSON values built from them.
_PIECES = ["4111111111111111", "4111 1111 1111 1111", "5555-5555-5555-4444", "1732406400000", "12", " ",
           "CVV: 123", "pin 1234", "\u00a0", "\u0664\u0661\u0661\u0661", "%20", "\\u0034", "a", "\n", "DE89"]  # fmt: skip
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)
_SCALAR = st.one_of(_TEXT, st.sampled_from([4111111111111111, 4111111111111111.0, 1732406400000, 7, 1.5, None,
                                            True]))  # fmt: skip
_JSON = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=16)


def _one_by_one(masker: Masker, value: Any) -> Any:
    """What Masker.message must give: every string, key and PAN-sized integer masked on its own."""
    if isinstance(value, str):
        return masker.text(value, "", {})
    if isinstance(value, list):
        return [_one_by_one(masker, v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            kind = sensitive_key(k)
            has_value = v is not None and not isinstance(v, bool) and v != ""
            out[masker.text(k, "", {})] = redact_sad(kind) if kind and has_value else _one_by_one(masker, v)
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value):
        if 10**11 <= int(value) < 10**19:
            text = str(int(value))
            masked = masker.text(text, "", {})
            return masked if masked != text else value
    return value


@settings(max_examples=300, deadline=None)
@given(content=_JSON, ensure_ascii=st.booleans())
def test_a_message_is_masked_as_its_strings_are_one_by_one(content: Any, ensure_ascii: bool) -> None:
    # Masker.message reads all the strings of a message in one scan: the result must not tell.
    masker = Masker(MaskPolicy())
    raw = json.dumps(result(content), ensure_ascii=ensure_ascii).encode()
    out, _ = masker.message(Message.parse(raw, S2C))
    assert out.obj == result(_one_by_one(masker, content))
