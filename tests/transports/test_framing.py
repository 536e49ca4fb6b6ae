"""relay.transports.framing: newline-delimited JSON-RPC over a byte stream, with a bounded buffer."""

from __future__ import annotations

import math
import tracemalloc

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from relay.jsonrpc import INVALID_REQUEST, PARSE_ERROR, REQUEST_TOO_LARGE, Direction, Kind, Message
from relay.transports import Fault
from relay.transports.framing import CHUNK, LineReader, guess_ids

pytestmark = pytest.mark.anyio

C2S = Direction.CLIENT_TO_SERVER
REQ = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
NOTE = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def reader(chunks: list[bytes], limit: int = 1000, direction: Direction = C2S) -> LineReader:
    """A LineReader over a finished in-memory byte stream that delivers exactly these chunks."""
    send, receive = anyio.create_memory_object_stream[bytes](math.inf)
    for chunk in chunks:
        send.send_nowait(chunk)
    send.close()
    return LineReader(BufferedByteReceiveStream(receive), limit, direction)


async def read_all(chunks: list[bytes], limit: int = 1000) -> list[Message | Fault]:
    r = reader(chunks, limit)
    out: list[Message | Fault] = []
    while True:
        try:
            out.append(await r.receive())
        except anyio.EndOfStream:
            return out


def raws(items: list[Message | Fault]) -> list[bytes | Fault]:
    return [i.raw if isinstance(i, Message) else i for i in items]


async def test_lines_become_messages() -> None:
    items = await read_all([REQ + b"\n" + NOTE + b"\n"])
    assert raws(items) == [REQ, NOTE]
    assert isinstance(items[0], Message)
    assert items[0].kind is Kind.REQUEST
    assert items[0].direction is C2S


async def test_direction_is_the_readers() -> None:
    r = reader([REQ + b"\n"], direction=Direction.SERVER_TO_CLIENT)
    m = await r.receive()
    assert isinstance(m, Message)
    assert m.direction is Direction.SERVER_TO_CLIENT


async def test_lines_split_across_chunks() -> None:
    stream = REQ + b"\n" + NOTE + b"\n"
    for cut in range(len(stream) + 1):
        assert raws(await read_all([stream[:cut], stream[cut:]])) == [REQ, NOTE], cut
    assert raws(await read_all([stream[i:i + 1] for i in range(len(stream))])) == [REQ, NOTE]


async def test_blank_lines_are_skipped() -> None:
    assert raws(await read_all([b"\n\n" + REQ + b"\n  \n\t\r\n\n" + NOTE + b"\n\n"])) == [REQ, NOTE]


async def test_last_line_without_newline_is_a_message() -> None:
    assert raws(await read_all([REQ + b"\n" + NOTE])) == [REQ, NOTE]


async def test_empty_stream_ends_at_once() -> None:
    assert await read_all([]) == []
    assert await read_all([b"\n\n"]) == []


async def test_crlf_lines_parse() -> None:
    [msg] = await read_all([REQ + b"\r\n"])
    assert isinstance(msg, Message)
    assert msg.obj == {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert msg.line() == REQ + b"\n"


async def test_end_of_stream_is_raised_again_after_the_end() -> None:
    r = reader([REQ + b"\n"])
    await r.receive()
    for _ in range(2):
        with pytest.raises(anyio.EndOfStream):
            await r.receive()


async def test_line_of_exactly_the_limit_is_accepted() -> None:
    line = b'{"jsonrpc":"2.0","method":"n","params":{"p":"' + b"x" * 20 + b'"}}'
    assert raws(await read_all([line + b"\n"], limit=len(line))) == [line]
    [fault] = await read_all([line + b"\n"], limit=len(line) - 1)
    assert isinstance(fault, Fault)


@pytest.mark.parametrize("split", [False, True], ids=["one-chunk", "many-chunks"])
async def test_oversize_line_is_a_fault_and_the_next_line_still_parses(split: bool) -> None:
    big = b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"x":"' + b"x" * 5000 + b'"}}'
    stream = REQ + b"\n" + big + b"\n" + NOTE + b"\n"
    chunks = [stream[i:i + 700] for i in range(0, len(stream), 700)] if split else [stream]
    items = await read_all(chunks, limit=1000)
    # The fault names the request it was (its id guessed from the line's ends), so the sender can be answered.
    assert raws(items) == [REQ, Fault("message larger than the limit of 1000 bytes; dropped", REQUEST_TOO_LARGE, (2,)),
                           NOTE]


async def test_oversize_last_line_without_newline() -> None:
    items = await read_all([REQ + b"\n", b'{"id":"last",' + b"x" * 3000], limit=1000)
    assert raws(items) == [REQ, Fault("message larger than the limit of 1000 bytes; dropped", REQUEST_TOO_LARGE,
                                      ("last",))]


async def test_two_oversize_lines_in_a_row() -> None:
    stream = b"a" * 1500 + b"\n" + b"b" * 1500 + b"\n" + REQ + b"\n"
    items = await read_all([stream[i:i + 400] for i in range(0, len(stream), 400)], limit=1000)
    assert [type(i) for i in items] == [Fault, Fault, Message]


async def test_memory_stays_bounded_while_an_endless_line_arrives() -> None:
    limit = 1 << 20
    chunk = b"x" * (64 * 1024)
    r = reader([chunk] * 512 + [b"\n" + REQ + b"\n"], limit=limit)  # a 32 MiB line, 32 times the limit
    tracemalloc.start()
    try:
        fault = await r.receive()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(fault, Fault)
    assert fault.code == REQUEST_TOO_LARGE
    assert peak < 2 * (limit + CHUNK)
    msg = await r.receive()
    assert isinstance(msg, Message)
    assert msg.raw == REQ


@pytest.mark.parametrize(("line", "code"), [
    (b'{"jsonrpc":"2.0","method":"\xff\xfe"}', PARSE_ERROR),
    (b"\xc3", PARSE_ERROR),
    (b"{not json", PARSE_ERROR),
    (b'{"jsonrpc":"2.0","method":"a"}}', PARSE_ERROR),
    (b"[]", INVALID_REQUEST),
    (b"7", INVALID_REQUEST),
])
async def test_bad_lines_are_faults_and_reading_goes_on(line: bytes, code: int) -> None:
    items = await read_all([line + b"\n" + REQ + b"\n"])
    assert len(items) == 2
    fault, msg = items
    assert isinstance(fault, Fault)
    assert fault.code == code
    assert fault.request_ids == ()
    assert isinstance(msg, Message)
    assert msg.raw == REQ


async def test_non_utf8_fault_says_so() -> None:
    [fault] = await read_all([b'{"a":"\xff"}\n'])
    assert isinstance(fault, Fault)
    assert fault.code == PARSE_ERROR
    assert "UTF-8" in fault.reason


async def test_a_closed_stream_counts_as_the_end() -> None:
    send, receive = anyio.create_memory_object_stream[bytes](math.inf)
    send.send_nowait(REQ)  # no newline yet
    stream = BufferedByteReceiveStream(receive)
    r = LineReader(stream, 1000, C2S)
    await receive.aclose()
    # The bytes already received are gone with the closed stream; what matters is that the reader ends
    # instead of raising ClosedResourceError at its caller.
    with pytest.raises(anyio.EndOfStream):
        await r.receive()
    send.close()


async def test_oversize_fault_ids_come_from_this_line_only() -> None:
    first = b'{"jsonrpc":"2.0","id":"a","method":"m","params":{"p":"' + b"x" * 2000 + b'"}}'
    second = b'{"jsonrpc":"2.0","method":"n","params":{"p":"' + b"y" * 2000 + b'"}}'  # a notification
    stream = first + b"\n" + second + b"\n"
    items = await read_all([stream[i:i + 300] for i in range(0, len(stream), 300)], limit=1000)
    assert [i.request_ids for i in items if isinstance(i, Fault)] == [("a",), ()]


@pytest.mark.parametrize(("head", "tail", "ids"), [
    (b'{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"a":"', b'"}}', (17,)),
    (b'{"jsonrpc":"2.0","id":"r-1","method":"x","params":{"a":"', b'"}}', ("r-1",)),
    (b'{"jsonrpc":"2.0","id": -3,"method":"x","params":{"a":"', b'"}}', (-3,)),
    (b'{"jsonrpc":"2.0","id":"say \\"hi\\"","method":"x","params":{"a":"', b'"}}', ('say "hi"',)),
    (b'{"jsonrpc":"2.0","method":"x","params":{"a":"', b'"},"id":42}', (42,)),
    (b'{"jsonrpc":"2.0","method":"x","params":{"a":"', b'"}}', ()),
    # An "id" inside a string value is escaped JSON, not a key.
    (b'{"jsonrpc":"2.0","method":"x","params":{"a":"\\"id\\":5', b'"}}', ()),
    (b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"', b'"},"id":1}', (1,)),
])
def test_guess_ids(head: bytes, tail: bytes, ids: tuple[object, ...]) -> None:
    assert guess_ids(head, tail) == ids


@pytest.mark.parametrize(("head", "tail", "ids"), [
    # The response's own id leads; the result ends with ids of its own (orders, customers...).
    (b'{"jsonrpc":"2.0","id":5,"result":{"orders":[{"id":1,"n":"', b'"},{"id":7,"total":1}]}}', (5,)),
    # The request's own id comes last; its arguments lead with an "id" field.
    (b'{"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"id":5,"blob":"', b'"}},"id":9}', (9,)),
], ids=["response-id-first", "request-id-last"])
def test_guess_ids_ignores_ids_nested_in_params_or_result(head: bytes, tail: bytes, ids: tuple[object, ...]) -> None:
    # A nested id that happens to equal a pending request's id would get that request a wrong error now
    # and its real answer later (twice answered); only the message's top-level "id" names whom it concerns.
    assert guess_ids(head, tail) == ids
