"""relay.transports.sse_codec: the bounded SSE decoder and the encoder, fed in every way a network can split bytes."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.transports.sse_codec import Event, SSEDecoder, encode_event

BIG = 1 << 20


def decode(stream: bytes, limit: int = BIG) -> list[Event]:
    return SSEDecoder(limit).feed(stream)


def decode_chunks(chunks: list[bytes], limit: int = BIG) -> list[Event]:
    dec = SSEDecoder(limit)
    return [ev for chunk in chunks for ev in dec.feed(chunk)]


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i:i + 1] for i in range(len(stream))]


# -- fields -----------------------------------------------------------------------------------------------


def test_a_simple_event() -> None:
    assert decode(b"data: {}\n\n") == [Event("message", b"{}", None)]


def test_event_name_id_and_data() -> None:
    [ev] = decode(b"event: message\nid: 42\ndata: hello\n\n")
    assert ev == Event("message", b"hello", "42")
    [ev] = decode(b"event: endpoint\ndata: /messages?session=1\n\n")
    assert ev.event == "endpoint"
    assert ev.data == b"/messages?session=1"


def test_field_value_loses_exactly_one_leading_space() -> None:
    assert decode(b"data:x\n\n")[0].data == b"x"
    assert decode(b"data: x\n\n")[0].data == b"x"
    assert decode(b"data:  x \n\n")[0].data == b" x "


def test_field_without_colon_has_an_empty_value() -> None:
    assert decode(b"data\ndata: x\n\n") == [Event("message", b"\nx", None)]


def test_event_with_empty_data_is_not_dispatched_but_its_id_counts() -> None:
    # A priming event (an id and empty data, sent so a client can resume) carries no message.
    dec = SSEDecoder(BIG)
    assert dec.feed(b"id: p1\ndata:\n\n") == []
    assert dec.feed(b"data\n\n") == []
    assert dec.last_event_id == "p1"
    assert dec.feed(b"data: x\n\n") == [Event("message", b"x", "p1")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    [ev] = decode(b'data: {\ndata:   "a": 1\ndata: }\n\n')
    assert ev.data == b'{\n  "a": 1\n}'


def test_empty_data_lines_count() -> None:
    assert decode(b"data:\ndata:\n\n")[0].data == b"\n"


def test_event_name_is_reset_after_each_event() -> None:
    evs = decode(b"event: a\ndata: 1\n\ndata: 2\n\n")
    assert [(e.event, e.data) for e in evs] == [("a", b"1"), ("message", b"2")]


def test_block_without_data_dispatches_nothing_but_resets_the_name() -> None:
    evs = decode(b"event: a\n\ndata: 2\n\n")
    assert evs == [Event("message", b"2", None)]


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\nDATA: y\n\n") == [Event("message", b"x", None)]


def test_comments_are_ignored_and_do_not_end_an_event() -> None:
    assert decode(b": keep-alive\n:\ndata: a\n: in the middle\ndata: b\n\n") == [Event("message", b"a\nb", None)]
    assert decode(b": ping\n\n: ping\n\n") == []


def test_last_event_id_persists_and_can_be_cleared() -> None:
    dec = SSEDecoder(BIG)
    evs = dec.feed(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in evs] == ["1", "1", ""]
    assert dec.last_event_id == ""


def test_id_is_tracked_without_an_event() -> None:
    dec = SSEDecoder(BIG)
    assert dec.feed(b"id: 7\n\n") == []
    assert dec.last_event_id == "7"


def test_id_with_nul_is_ignored() -> None:
    dec = SSEDecoder(BIG)
    dec.feed(b"id: 1\n\nid: 2\x003\ndata: x\n\n")
    assert dec.last_event_id == "1"


def test_retry_is_tracked_only_when_all_digits() -> None:
    dec = SSEDecoder(BIG)
    assert dec.retry_ms is None
    dec.feed(b"retry: 3000\n\n")
    assert dec.retry_ms == 3000
    dec.feed(b"retry: 12x\n\nretry: -5\n\nretry:\n\n")
    assert dec.retry_ms == 3000


def test_data_is_kept_as_bytes_even_when_not_utf8() -> None:
    assert decode(b"data: \xff\xfe\n\n")[0].data == b"\xff\xfe"


def test_incomplete_event_is_not_dispatched() -> None:
    dec = SSEDecoder(BIG)
    assert dec.feed(b"data: a\n") == []
    assert dec.feed(b"data: b\n") == []
    assert dec.feed(b"\n") == [Event("message", b"a\nb", None)]


# -- line endings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"id: 1", b"data: a", b"data: b", b"", b"data: c", b"", b": end", b""])
    assert decode(stream) == [Event("e", b"a\nb", "1"), Event("message", b"c", "1")]
    assert decode_chunks(bytewise(stream)) == decode(stream)


def test_mixed_line_endings() -> None:
    assert decode(b"data: a\r\ndata: b\rdata: c\n\r\n") == [Event("message", b"a\nb\nc", None)]


def test_crlf_split_across_two_chunks_is_one_line_ending() -> None:
    dec = SSEDecoder(BIG)
    assert dec.feed(b"data: a\r") == []
    # Had the CR been taken as a line ending on its own, this LF would be a blank line and dispatch.
    assert dec.feed(b"\ndata: b\r") == []
    # A CR ends a line at once (CR alone and CRLF both do), so the blank line dispatches now...
    assert dec.feed(b"\n\r") == [Event("message", b"a\nb", None)]
    # ...and the LF completing that CRLF is not another blank line.
    assert dec.feed(b"\n") == []


def test_cr_then_cr_is_two_line_endings_across_chunks() -> None:
    dec = SSEDecoder(BIG)
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\rdata: b\r\r: next\n") == [Event("message", b"a", None), Event("message", b"b", None)]


def test_cr_terminated_event_is_dispatched_without_waiting_for_more_bytes() -> None:
    # A server that ends lines with CR alone (allowed by the SSE spec) and then waits must have its event
    # delivered now: holding the final CR back to see whether an LF follows delays the response until the
    # server sends something else, possibly never.
    dec = SSEDecoder(BIG)
    assert dec.feed(b"data: x\r\r") == [Event("message", b"x", None)]
    assert dec.feed(b"\n") == []  # the LF of a split CRLF is not a second blank line


# -- split at every boundary ------------------------------------------------------------------------------


def test_an_event_split_at_every_byte_boundary() -> None:
    stream = b"event: message\r\nid: abc\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n"
    whole = decode(stream)
    assert whole == [Event("message", b'{"jsonrpc":"2.0","id":1,"result":{}}', "abc")]
    for i in range(len(stream) + 1):
        assert decode_chunks([stream[:i], stream[i:]]) == whole, i
    assert decode_chunks(bytewise(stream)) == whole


_text = st.text(st.sampled_from("ab: {}\"\né\u2028\x00"), max_size=40)
_events = st.lists(
    st.tuples(
        st.none() | st.text(st.sampled_from("abcdef-"), min_size=1, max_size=8),   # event name
        st.none() | st.text(st.sampled_from("0123456789xyz"), max_size=6),          # id
        _text.map(lambda s: s.encode("utf-8")),                                      # data
        st.booleans(),                                                                # a comment before it
    ),
    max_size=8,
)


def _encode(events: list[tuple[str | None, str | None, bytes, bool]], eol: bytes) -> tuple[bytes, list[Event]]:
    parts: list[bytes] = []
    expected: list[Event] = []
    last_id: str | None = None
    for name, id_, data, comment in events:
        if comment:
            parts.append(b": keep-alive\n")
        parts.append(encode_event(data, event=name, id=id_))
        last_id = id_ if id_ is not None else last_id
        if data:  # empty data is a priming event: nothing to dispatch
            expected.append(Event(name or "message", data, last_id))
    # The stream ends with a comment line so that no event depends on bytes after the end.
    parts.append(b": bye\n")
    return b"".join(parts).replace(b"\n", eol), expected


@settings(max_examples=300)
@given(events=_events, eol=st.sampled_from([b"\n", b"\r\n", b"\r"]), data=st.data())
def test_any_chunking_yields_the_same_events(events: list[tuple[str | None, str | None, bytes, bool]],
                                             eol: bytes, data: st.DataObject) -> None:
    stream, expected = _encode(events, eol)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts"))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode(stream) == expected
    assert decode_chunks(chunks) == expected


@settings(max_examples=300)
@given(sizes=st.lists(st.integers(0, 80), min_size=1, max_size=5), data=st.data())
def test_chunking_does_not_change_which_events_are_oversize(sizes: list[int], data: st.DataObject) -> None:
    # With a limit of 40 bytes, events of data near and beyond the limit must come out the same however
    # the network splits them.
    stream = b"".join(encode_event(b"x" * n) for n in sizes) + b": bye\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts"))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode_chunks(chunks, limit=40) == decode(stream, limit=40)


# -- the limit --------------------------------------------------------------------------------------------


def test_event_within_the_limit_is_delivered() -> None:
    assert decode(b"data: " + b"x" * 50 + b"\n\n", limit=100) == [Event("message", b"x" * 50, None)]


def test_oversize_event_is_flagged_without_data() -> None:
    [ev] = decode(b"id: 9\nevent: message\ndata: " + b"x" * 101 + b"\n\n", limit=100)
    assert ev == Event("message", b"", "9", oversize=True)


def test_oversize_across_many_data_lines() -> None:
    line = b"data: " + b"x" * 30 + b"\n"
    [ev] = decode(line * 5 + b"\n", limit=100)
    assert ev.oversize
    assert ev.data == b""


def test_the_event_after_an_oversize_one_is_whole() -> None:
    evs = decode(b"data: " + b"x" * 200 + b"\n\ndata: ok\n\n", limit=100)
    assert evs == [Event("message", b"", None, oversize=True), Event("message", b"ok", None)]


def test_oversize_line_split_over_chunks_is_flagged_once() -> None:
    dec = SSEDecoder(100)
    assert dec.feed(b"data: " + b"x" * 150) == []
    assert dec.feed(b"x" * 150) == []
    assert dec.feed(b"\n\ndata: ok\n\n") == [Event("message", b"", None, oversize=True), Event("message", b"ok", None)]


def test_rest_of_an_oversize_event_is_not_a_new_event() -> None:
    # The over-long first line is dropped when a chunk ends inside it; the chunk that follows starts with
    # that line's own newline. That newline ends the dropped line; it is not a blank line that ends the
    # event, so the event's later data lines must not come out as an event of their own.
    dec = SSEDecoder(100)
    out = dec.feed(b"data: " + b"x" * 150)
    out += dec.feed(b"\ndata: tail of the same event\n\n")
    assert out == [Event("message", b"", None, oversize=True)]


def test_a_long_comment_does_not_spoil_the_next_event() -> None:
    # Comments carry no data; however the chunks fall, one longer than the limit is just skipped.
    stream = b":" + b"p" * 300 + b"\ndata: ok\n\n"
    assert decode(stream, limit=100) == [Event("message", b"ok", None)]
    assert decode_chunks([stream[:200], stream[200:]], limit=100) == [Event("message", b"ok", None)]


def test_memory_stays_bounded_while_an_endless_line_arrives() -> None:
    limit = 1 << 20
    chunk = b"x" * (64 * 1024)
    dec = SSEDecoder(limit)
    tracemalloc.start()
    try:
        dec.feed(b"data: ")
        for _ in range(512):  # 32 MiB of one line, 32 times the limit
            assert dec.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit
    assert dec.feed(b"\n\n") == [Event("message", b"", None, oversize=True)]


# -- encoder ----------------------------------------------------------------------------------------------


def test_encode_event_fields() -> None:
    assert encode_event(b"{}") == b"data: {}\n\n"
    assert encode_event(b"{}", event="message", id="5") == b"event: message\nid: 5\ndata: {}\n\n"
    assert encode_event(b"", id="") == b"id: \ndata: \n\n"


def test_encode_event_splits_lines_of_any_ending() -> None:
    assert encode_event(b"a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


@pytest.mark.parametrize("data", [b"{}", b"a\nb", b"\n", b" leading space", b": colon", b"\n\n\n", "é\u2028".encode()])
def test_encode_decode_round_trip(data: bytes) -> None:
    assert decode(encode_event(data, event="x", id="i")) == [Event("x", data, "i")]
