"""relay.session: pumping messages between a client and an upstream through the pipeline, over memory transports."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from relay.errors import UpstreamError
from relay.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    REJECTED,
    REQUEST_TOO_LARGE,
    UPSTREAM_ERROR,
    Direction,
    Kind,
    Message,
    ParseFailure,
)
from relay.pipeline import Context, Pipeline, Rejected
from relay.session import Session
from relay.transports import Fault
from relay.transports.memory import MemoryTransport, memory_pair

# A hang is a failure here; pytest-timeout turns it into one without waiting two minutes.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


class Spy:
    """A guard that passes everything and remembers what it saw (with its context) and the events reported."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: list[tuple[Message, Context]] = []
        self.events: list[dict[str, Any]] = []

    async def intercept(self, msg: Message, ctx: Context) -> Message:
        self.seen.append((msg, ctx))
        return msg

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    async def aclose(self, reason: str = "client_closed") -> None:
        pass


class RejectMethod:
    """A guard that rejects requests for one method."""

    name = "policy"

    def __init__(self, method: str) -> None:
        self.method = method

    async def intercept(self, msg: Message, ctx: Context) -> Message:
        if msg.method == self.method:
            raise Rejected(f"{self.method} is not allowed", code=REJECTED)
        return msg

    async def aclose(self, reason: str = "client_closed") -> None:
        pass


class ScriptedTransport:
    """Test double for one side of a session: the test pushes what `receive` returns, including Faults that
    name request ids and exceptions such as UpstreamError.

    Those come from the HTTP upstreams (a failed POST) and from line framing (an oversize message); the memory
    transport carries bytes only, so it cannot produce them.
    """

    def __init__(self, incoming: Direction) -> None:
        self._incoming = incoming
        self._push, self._items = anyio.create_memory_object_stream[bytes | Fault | Exception](math.inf)
        self._out, self.sent = anyio.create_memory_object_stream[Message](math.inf)
        self.send_error: Exception | None = None

    def push(self, item: bytes | Fault | Exception) -> None:
        self._push.send_nowait(item)

    def end(self) -> None:
        self._push.close()

    async def send(self, msg: Message) -> None:
        if self.send_error is not None:
            raise self.send_error
        await self._out.send(msg)

    async def receive(self) -> Message | Fault:
        item = await self._items.receive()
        if isinstance(item, Exception):
            raise item
        if isinstance(item, Fault):
            return item
        try:
            return Message.parse(item, self._incoming)
        except ParseFailure as exc:
            return Fault(exc.reason, exc.code)

    async def aclose(self) -> None:
        self._out.close()


def req(id_: Any, method: str = "tools/list", **params: Any) -> bytes:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params:
        obj["params"] = params
    return json.dumps(obj).encode()


def resp(id_: Any, result: Any = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result if result is not None else {}}).encode()


class Run:
    """A session running in the background while the test plays client and server."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.error: UpstreamError | None = None
        self.finished = anyio.Event()

    async def _go(self) -> None:
        try:
            await self.session.run()
        except UpstreamError as exc:
            self.error = exc
        finally:
            self.finished.set()


async def play(session: Session, script: Callable[[Run], Awaitable[None]]) -> Run:
    """Run `session` and `script` together; returns once both are done."""
    run = Run(session)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run._go)
        await script(run)
        await run.finished.wait()
    return run


def sides(*guards: Any) -> tuple[Session, MemoryTransport, MemoryTransport, Pipeline]:
    relay_client, client = memory_pair(C2S)
    relay_upstream, server = memory_pair(S2C)
    pipeline = Pipeline(list(guards))
    return Session(relay_client, relay_upstream, pipeline), client, server, pipeline


# -- relaying ---------------------------------------------------------------------------------------------


async def test_relays_every_kind_both_ways_byte_for_byte() -> None:
    session, client, server, _ = sides(Spy())
    # Odd spacing, key order and escapes must survive untouched.
    request = b'{ "method":"tools/call", "id":1 ,"jsonrpc":"2.0","params":{"name":"lookup","arguments":{"q":"\\u00e9"}}}'
    response = b'{"result":{"content":[]},"jsonrpc":"2.0","id":1,"extra":{"keep":true}}'
    progress = b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}'
    cancelled = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}'
    error = b'{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found"}}'

    async def script(run: Run) -> None:
        await client.send_raw(request)
        assert await server.receive_raw() == request
        await server.send_raw(progress)
        assert await client.receive_raw() == progress
        await server.send_raw(response)
        assert await client.receive_raw() == response
        await client.send_raw(cancelled)
        assert await server.receive_raw() == cancelled
        await client.send_raw(req("x", "bogus"))
        assert await server.receive_raw() == req("x", "bogus")
        await server.send_raw(error)
        assert await client.receive_raw() == error
        await client.aclose()

    run = await play(session, script)
    assert run.error is None


async def test_batches_pass_through_unchanged() -> None:
    session, client, server, pipeline = sides()
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"2.0","method":"b"}]'
    answers = b'[{"jsonrpc":"2.0","id":1,"result":{}}]'

    async def script(run: Run) -> None:
        await client.send_raw(batch)
        assert await server.receive_raw() == batch
        await server.send_raw(answers)
        assert await client.receive_raw() == answers
        await client.aclose()

    await play(session, script)
    assert pipeline.pending(C2S) == []


async def test_server_request_and_client_response_are_correlated() -> None:
    spy = Spy()
    session, client, server, pipeline = sides(spy)
    sampling = req("s1", "sampling/createMessage", messages=[])
    answer = resp("s1", {"role": "assistant", "content": {"type": "text", "text": "hi"}})

    async def script(run: Run) -> None:
        await server.send_raw(sampling)
        assert await client.receive_raw() == sampling
        assert [m.id for m in pipeline.pending(S2C)] == ["s1"]
        await client.send_raw(answer)
        assert await server.receive_raw() == answer
        await client.aclose()

    await play(session, script)
    (server_req, _), (client_resp, ctx) = spy.seen
    assert server_req.direction is S2C
    assert client_resp.direction is C2S
    assert ctx.direction is C2S
    assert ctx.request is server_req
    assert ctx.method == "sampling/createMessage"
    assert pipeline.pending(S2C) == []


# -- the pipeline's verdicts ------------------------------------------------------------------------------


async def test_rejected_client_request_is_answered_and_never_reaches_the_server() -> None:
    session, client, server, _ = sides(RejectMethod("tools/call"))

    async def script(run: Run) -> None:
        await client.send_raw(req(1, "tools/call", name="refund"))
        error = json.loads(await client.receive_raw())
        assert error == {"jsonrpc": "2.0", "id": 1, "error": {"code": REJECTED, "message": "tools/call is not allowed"}}
        await client.send_raw(req(2))
        assert await server.receive_raw() == req(2)  # the first thing the server sees
        await server.send_raw(resp(2))
        await client.receive_raw()
        await client.aclose()

    await play(session, script)


async def test_rejected_server_request_is_answered_to_the_server() -> None:
    session, client, server, _ = sides(RejectMethod("sampling/createMessage"))

    async def script(run: Run) -> None:
        await server.send_raw(req("s", "sampling/createMessage"))
        error = json.loads(await server.receive_raw())
        assert error["id"] == "s"
        assert error["error"]["code"] == REJECTED
        await server.send_raw(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
        assert json.loads(await client.receive_raw())["method"] == "notifications/tools/list_changed"
        await client.aclose()

    await play(session, script)


# -- what the client sends that is not a message ----------------------------------------------------------


@pytest.mark.parametrize(("garbage", "code"), [
    (b"{oops", PARSE_ERROR),
    (b"\xff\xfe", PARSE_ERROR),
    (b"[]", INVALID_REQUEST),
    (b'{"jsonrpc":"2.0"}', INVALID_REQUEST),
])
async def test_client_garbage_gets_an_error_with_null_id_and_the_session_goes_on(garbage: bytes, code: int) -> None:
    spy = Spy()
    session, client, server, _ = sides(spy)

    async def script(run: Run) -> None:
        await client.send_raw(garbage)
        error = json.loads(await client.receive_raw())
        assert error["id"] is None
        assert error["error"]["code"] == code
        assert error["error"]["message"]
        await client.send_raw(req(1))
        assert await server.receive_raw() == req(1)
        await server.send_raw(resp(1))
        assert await client.receive_raw() == resp(1)
        await client.aclose()

    run = await play(session, script)
    assert run.error is None
    assert [e["event"] for e in spy.events] == ["client_fault"]
    assert spy.events[0]["code"] == code


async def test_request_with_an_id_that_is_not_string_or_number_is_answered_not_fatal() -> None:
    session, client, server, _ = sides()

    async def script(run: Run) -> None:
        await client.send_raw(b'{"jsonrpc":"2.0","id":[1],"method":"tools/list"}')
        error = json.loads(await client.receive_raw())
        assert error["error"]["code"] == INVALID_REQUEST
        await client.send_raw(req(2))
        assert await server.receive_raw() == req(2)
        await server.send_raw(resp(2))
        await client.receive_raw()
        await client.aclose()

    await play(session, script)


async def test_oversize_client_request_is_answered_with_its_own_id() -> None:
    relay_client = ScriptedTransport(C2S)
    relay_upstream, _server = memory_pair(S2C)
    session = Session(relay_client, relay_upstream, Pipeline([]))

    async def script(run: Run) -> None:
        relay_client.push(Fault("message larger than the limit", REQUEST_TOO_LARGE, (9,)))
        error = await relay_client.sent.receive()
        assert error.obj == {"jsonrpc": "2.0", "id": 9, "error": {"code": REQUEST_TOO_LARGE,
                                                                  "message": "message larger than the limit"}}
        relay_client.end()

    await play(session, script)


async def test_oversize_client_fault_never_answers_a_request_still_in_flight() -> None:
    # The ids of an oversize line are guesses. Request 5 is in flight, so 5 cannot be the oversize
    # request's id (ids of requests in flight are unique): answering 5 with this error would end the
    # client's wait for the real answer, which then arrives for a request it no longer has.
    relay_client = ScriptedTransport(C2S)
    relay_upstream, server = memory_pair(S2C)
    session = Session(relay_client, relay_upstream, Pipeline([]))

    async def script(run: Run) -> None:
        relay_client.push(req(5))
        assert await server.receive_raw() == req(5)
        relay_client.push(Fault("message larger than the limit", REQUEST_TOO_LARGE, (5, 9)))
        error = await relay_client.sent.receive()
        assert error.id != 5
        await server.send_raw(resp(5))
        assert (await relay_client.sent.receive()).raw == resp(5)
        relay_client.end()

    await play(session, script)


# -- ending -----------------------------------------------------------------------------------------------


async def test_client_close_ends_the_session_once_pending_answers_arrive() -> None:
    session, client, server, pipeline = sides()

    async def script(run: Run) -> None:
        await client.send_raw(req(1))
        await client.send_raw(req(2))
        assert await server.receive_raw() == req(1)
        assert await server.receive_raw() == req(2)
        await client.aclose()
        await anyio.wait_all_tasks_blocked()
        assert not run.finished.is_set()  # draining: two answers are owed
        await server.send_raw(resp(2))
        await anyio.wait_all_tasks_blocked()
        assert not run.finished.is_set()  # one still owed
        await server.send_raw(resp(1))
        await run.finished.wait()
        assert await client.receive_raw() == resp(2)
        assert await client.receive_raw() == resp(1)

    run = await play(session, script)
    assert run.error is None
    assert pipeline.pending(C2S) == []


async def test_client_close_with_nothing_pending_ends_at_once() -> None:
    session, client, server, _ = sides()

    async def script(run: Run) -> None:
        await client.send_raw(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        await server.receive_raw()
        await client.aclose()

    run = await play(session, script)
    assert run.error is None


async def test_drain_is_bounded() -> None:
    relay_client, client = memory_pair(C2S)
    relay_upstream, server = memory_pair(S2C)
    session = Session(relay_client, relay_upstream, Pipeline([]), drain_seconds=0)

    async def script(run: Run) -> None:
        await client.send_raw(req(1))
        await server.receive_raw()
        await client.aclose()  # the server never answers

    run = await play(session, script)
    assert run.error is None


async def test_upstream_close_fails_every_pending_request_and_raises() -> None:
    spy = Spy()
    session, client, server, pipeline = sides(spy)

    async def script(run: Run) -> None:
        for i in (1, 2, "three"):
            await client.send_raw(req(i))
            await server.receive_raw()
        await server.send_raw(resp(1))
        assert await client.receive_raw() == resp(1)
        await server.aclose()
        errors = [json.loads(await client.receive_raw()) for _ in range(2)]
        assert sorted(map(str, (e["id"] for e in errors))) == ["2", "three"]
        for e in errors:
            assert e["error"] == {"code": UPSTREAM_ERROR, "message": "upstream closed the connection"}

    run = await play(session, script)
    assert isinstance(run.error, UpstreamError)
    assert "upstream closed the connection" in str(run.error)
    assert pipeline.pending(C2S) == []
    assert sorted(str(e["id"]) for e in spy.events if e["event"] == "upstream_failed") == ["2", "three"]


async def test_upstream_failure_names_the_cause_to_every_pending_request() -> None:
    relay_client, client = memory_pair(C2S)
    upstream = ScriptedTransport(S2C)
    session = Session(relay_client, upstream, Pipeline([]))

    async def script(run: Run) -> None:
        await client.send_raw(req(1))
        await client.send_raw(req(2))
        assert (await upstream.sent.receive()).id == 1
        assert (await upstream.sent.receive()).id == 2
        upstream.push(UpstreamError("server returned HTTP 503"))
        errors = [json.loads(await client.receive_raw()) for _ in range(2)]
        assert sorted(e["id"] for e in errors) == [1, 2]
        for e in errors:
            assert e["error"] == {"code": UPSTREAM_ERROR, "message": "server returned HTTP 503"}

    run = await play(session, script)
    assert run.error is not None
    assert str(run.error) == "server returned HTTP 503"


async def test_upstream_send_failure_answers_the_request_being_sent() -> None:
    relay_client, client = memory_pair(C2S)
    upstream = ScriptedTransport(S2C)
    upstream.send_error = UpstreamError("connection refused")
    session = Session(relay_client, upstream, Pipeline([]))

    async def script(run: Run) -> None:
        await client.send_raw(req(7))
        error = json.loads(await client.receive_raw())
        assert error == {"jsonrpc": "2.0", "id": 7, "error": {"code": UPSTREAM_ERROR, "message": "connection refused"}}

    run = await play(session, script)
    assert str(run.error) == "connection refused"


# -- faults from upstream ---------------------------------------------------------------------------------


async def test_upstream_fault_with_request_ids_answers_those_requests() -> None:
    spy = Spy()
    relay_client, client = memory_pair(C2S)
    upstream = ScriptedTransport(S2C)
    pipeline = Pipeline([spy])
    session = Session(relay_client, upstream, pipeline)

    async def script(run: Run) -> None:
        for i in (3, 4):
            await client.send_raw(req(i))
            await upstream.sent.receive()
        upstream.push(Fault("server returned HTTP 502", UPSTREAM_ERROR, (3, 99)))
        error = json.loads(await client.receive_raw())
        assert error == {"jsonrpc": "2.0", "id": 3, "error": {"code": UPSTREAM_ERROR, "message": "server returned HTTP 502"}}
        assert [m.id for m in pipeline.pending(C2S)] == [4]
        upstream.push(resp(4))
        assert await client.receive_raw() == resp(4)
        await client.aclose()

    run = await play(session, script)
    assert run.error is None
    assert {"event": "upstream_fault", "reason": "server returned HTTP 502", "code": UPSTREAM_ERROR,
            "ids": [3, 99]} in spy.events


async def test_upstream_fault_for_nobody_is_told_to_the_client_as_a_log_message() -> None:
    relay_client, client = memory_pair(C2S)
    upstream = ScriptedTransport(S2C)
    session = Session(relay_client, upstream, Pipeline([]))

    async def script(run: Run) -> None:
        upstream.push(b"{not json")
        note = Message.parse(await client.receive_raw(), S2C)
        assert note.kind is Kind.NOTIFICATION
        assert note.method == "notifications/message"
        assert note.params["level"] == "error"
        assert "relay dropped a message from the server" in note.params["data"]
        assert str(PARSE_ERROR) in note.params["data"]
        upstream.push(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
        assert json.loads(await client.receive_raw())["method"] == "notifications/tools/list_changed"
        await client.aclose()

    run = await play(session, script)
    assert run.error is None
