"""relay.jsonrpc: parsing and classifying messages, one-line framing, error builders, request ids."""

from __future__ import annotations

import json

import pytest

from relay.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Direction,
    Kind,
    Message,
    ParseFailure,
    classify,
    dumps,
    error_message,
    error_obj,
    request_ids,
)

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


def parse(raw: bytes, direction: Direction = C2S) -> Message:
    return Message.parse(raw, direction)


# -- classification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "kind"), [
    (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', Kind.REQUEST),
    (b'{"jsonrpc":"2.0","id":"a","method":"ping","params":{}}', Kind.REQUEST),
    # A null id is still an id: the sender expects an answer.
    (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', Kind.REQUEST),
    (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', Kind.NOTIFICATION),
    (b'{"jsonrpc":"2.0","id":1,"result":{}}', Kind.RESPONSE),
    (b'{"jsonrpc":"2.0","id":1,"result":null}', Kind.RESPONSE),
    (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}', Kind.ERROR),
    (b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]', Kind.BATCH),
    (b'[{"jsonrpc":"2.0","id":1,"result":{}}]', Kind.BATCH),
])
def test_parse_classifies_each_kind(raw: bytes, kind: Kind) -> None:
    msg = parse(raw, S2C)
    assert msg.kind is kind
    assert msg.raw == raw
    assert msg.obj == json.loads(raw)
    assert msg.direction is S2C


def test_request_accessors() -> None:
    msg = parse(b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}')
    assert msg.id == 7
    assert msg.method == "tools/call"
    assert msg.params == {"name": "echo", "arguments": {}}


def test_accessors_tolerate_odd_shapes() -> None:
    # Non-string method, list params and batches must not break the accessors guards rely on.
    msg = parse(b'{"jsonrpc":"2.0","id":1,"method":5,"params":[1,2]}')
    assert msg.method is None
    assert msg.params == {}
    batch = parse(b'[{"jsonrpc":"2.0","id":1,"method":"a"}]')
    assert batch.id is None
    assert batch.method is None
    assert batch.params == {}


@pytest.mark.parametrize(("raw", "code"), [
    (b"", PARSE_ERROR),
    (b"{", PARSE_ERROR),
    (b"not json", PARSE_ERROR),
    (b'{"jsonrpc":"2.0","id":1,"method":"a"} trailing', PARSE_ERROR),
    (b"[]", INVALID_REQUEST),
    (b"{}", INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1}', INVALID_REQUEST),
    (b"42", INVALID_REQUEST),
    (b'"hello"', INVALID_REQUEST),
    (b"null", INVALID_REQUEST),
    (b"[1]", INVALID_REQUEST),
    (b'[{"jsonrpc":"2.0","method":"a"},{}]', INVALID_REQUEST),
])
def test_parse_failures_carry_the_code_to_answer_with(raw: bytes, code: int) -> None:
    with pytest.raises(ParseFailure) as info:
        parse(raw)
    assert info.value.code == code
    assert info.value.reason


def test_empty_batch_is_an_invalid_request() -> None:
    with pytest.raises(ParseFailure, match="empty batch") as info:
        parse(b"[]")
    assert info.value.code == INVALID_REQUEST


def test_non_utf8_bytes_name_the_offending_byte() -> None:
    raw = b'{"jsonrpc":"2.0","method":"\xff"}'
    with pytest.raises(ParseFailure) as info:
        parse(raw)
    assert info.value.code == PARSE_ERROR
    assert "UTF-8" in info.value.reason
    assert f"byte {raw.index(0xFF)}" in info.value.reason


def test_deeply_nested_json_is_a_parse_failure() -> None:
    # Untrusted bytes: nesting beyond the decoder's recursion limit must become a ParseFailure (an error
    # answered to the sender), not a RecursionError that escapes the transport and ends the session.
    with pytest.raises(ParseFailure) as info:
        parse(b"[" * 100_000)
    assert info.value.code == PARSE_ERROR


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_standard_json_constants_are_rejected(constant: bytes) -> None:
    # NaN and Infinity are not JSON (RFC 8259). Accepting them means a later re-serialisation
    # (line(), batch items, replace) raises ValueError, because the encoder refuses them.
    with pytest.raises(ParseFailure) as info:
        parse(b'{"jsonrpc":"2.0","method":"a","params":{"v":' + constant + b"}}")
    assert info.value.code == PARSE_ERROR


def test_nested_batch_is_an_invalid_request() -> None:
    # A batch holds request/notification/response objects, never another batch (JSON-RPC 2.0, section 6).
    with pytest.raises(ParseFailure) as info:
        parse(b'[[{"jsonrpc":"2.0","id":1,"method":"a"}]]')
    assert info.value.code == INVALID_REQUEST


@pytest.mark.parametrize("id_", [b"[1]", b'{"a":1}', b"true"])
def test_ids_that_are_not_string_number_or_null_are_invalid(id_: bytes) -> None:
    # JSON-RPC ids are strings, numbers or null. An array or object id is unhashable and crashes the
    # pipeline's correlation table; true would collide with the id 1.
    with pytest.raises(ParseFailure) as info:
        parse(b'{"jsonrpc":"2.0","id":' + id_ + b',"method":"a"}')
    assert info.value.code == INVALID_REQUEST


def test_classify_raises_for_non_messages() -> None:
    for obj in ({}, [], 1, "x", None, [{"jsonrpc": "2.0"}]):
        with pytest.raises(ParseFailure):
            classify(obj)
    assert classify({"method": "m"}) is Kind.NOTIFICATION


# -- build, replace, items --------------------------------------------------------------------------------


def test_build_is_compact_and_keeps_non_ascii() -> None:
    msg = Message.build({"jsonrpc": "2.0", "id": 1, "result": {"text": "café €"}}, S2C)
    assert msg.raw == '{"jsonrpc":"2.0","id":1,"result":{"text":"café €"}}'.encode()
    assert msg.kind is Kind.RESPONSE
    assert msg.direction is S2C


def test_build_rejects_what_is_not_a_message() -> None:
    with pytest.raises(ParseFailure):
        Message.build({"jsonrpc": "2.0"}, C2S)


def test_replace_keeps_direction_and_leaves_the_original_alone() -> None:
    original = parse(b'{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1}}', S2C)
    new = original.replace({"jsonrpc": "2.0", "id": 1, "method": "a", "params": {"x": 2}})
    assert new.direction is S2C
    assert new.params == {"x": 2}
    assert new.raw == b'{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":2}}'
    assert original.params == {"x": 1}


def test_items_of_a_single_message_is_itself() -> None:
    msg = parse(b'{"jsonrpc":"2.0","method":"a"}')
    assert msg.items() == [msg]
    assert msg.items()[0] is msg


def test_items_of_a_batch_are_classified_messages_in_the_same_direction() -> None:
    batch = parse(b'[{"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"2.0","method":"b"},'
                  b' {"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}]', S2C)
    items = batch.items()
    assert [m.kind for m in items] == [Kind.REQUEST, Kind.NOTIFICATION, Kind.ERROR]
    assert all(m.direction is S2C for m in items)
    assert items[0].raw == b'{"jsonrpc":"2.0","id":1,"method":"a"}'
    assert [m.obj for m in items] == batch.obj


# -- line framing -----------------------------------------------------------------------------------------


def test_line_keeps_compact_raw_bytes_identical() -> None:
    # Spacing and key order the sender chose survive: relay forwards the bytes it received.
    raw = b'{ "id" : 1, "jsonrpc":"2.0",  "method":"a", "params":{"b":1.50,"a":"\\u00e9"} }'
    assert parse(raw).line() == raw + b"\n"


def test_line_puts_a_pretty_printed_body_on_one_line() -> None:
    obj = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "a\nb"}]}}
    raw = json.dumps(obj, indent=2).encode()
    assert b"\n" in raw
    line = parse(raw, S2C).line()
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == obj


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_line_removes_carriage_returns_too(newline: bytes) -> None:
    raw = b'{"jsonrpc":"2.0",' + newline + b'"method":"a"}'
    line = parse(raw).line()
    assert line == b'{"jsonrpc":"2.0","method":"a"}\n'


# -- errors and ids ---------------------------------------------------------------------------------------


def test_error_obj_without_and_with_data() -> None:
    assert error_obj(3, -32000, "down") == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32000, "message": "down"}}
    assert error_obj("x", -32002, "no", {"why": 1})["error"] == {"code": -32002, "message": "no", "data": {"why": 1}}
    # Falsy data that is not None is still data.
    assert error_obj(1, 1, "m", 0)["error"]["data"] == 0
    assert error_obj(None, PARSE_ERROR, "bad")["id"] is None


def test_error_message_is_a_compact_error_in_the_given_direction() -> None:
    msg = error_message("r1", -32003, "rejected by policy", S2C)
    assert msg.kind is Kind.ERROR
    assert msg.direction is S2C
    assert msg.id == "r1"
    assert msg.raw == b'{"jsonrpc":"2.0","id":"r1","error":{"code":-32003,"message":"rejected by policy"}}'


def test_request_ids_of_single_messages() -> None:
    assert request_ids(parse(b'{"jsonrpc":"2.0","id":"7","method":"a"}')) == ["7"]
    assert request_ids(parse(b'{"jsonrpc":"2.0","id":null,"method":"a"}')) == [None]
    assert request_ids(parse(b'{"jsonrpc":"2.0","method":"a"}')) == []
    assert request_ids(parse(b'{"jsonrpc":"2.0","id":1,"result":{}}')) == []


def test_request_ids_of_a_batch_are_its_requests_in_order() -> None:
    batch = parse(b'[{"jsonrpc":"2.0","id":2,"method":"a"},{"jsonrpc":"2.0","method":"n"},'
                  b'{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":"1","method":"b"}]')
    assert request_ids(batch) == [2, "1"]


def test_direction_reverse_and_short() -> None:
    assert C2S.reverse is S2C
    assert S2C.reverse is C2S
    assert (C2S.short, S2C.short) == ("c2s", "s2c")


def test_dumps_is_compact_and_refuses_nan() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    with pytest.raises(ValueError):
        dumps(float("nan"))


@pytest.mark.parametrize("raw", [
    b'{"jsonrpc":"2.0","id":1,"result":{"text":"4111111111111111","text":"safe"}}',
    b'{"jsonrpc":"2.0","id":1,"id":2,"result":{}}',
    b'[{"jsonrpc":"2.0","method":"a","params":{"x":{"k":1,"k":2}}}]',
])
def test_duplicate_keys_are_a_parse_failure(raw: bytes) -> None:
    # JSON with a duplicate key reads differently in different parsers: the value relay checks may not be
    # the value the receiver uses. Relay refuses such a message rather than guess.
    with pytest.raises(ParseFailure, match="duplicate key"):
        Message.parse(raw, Direction.SERVER_TO_CLIENT)
