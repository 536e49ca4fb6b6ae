"""relay.pipeline: the guard chain's verdicts, correlation of responses with requests, failing closed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from relay.jsonrpc import GUARD_ERROR, REJECTED, Direction, Kind, Message
from relay.pipeline import Context, Pipeline, Rejected

pytestmark = pytest.mark.anyio

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


def msg(raw: bytes | str, direction: Direction = C2S) -> Message:
    return Message.parse(raw.encode() if isinstance(raw, str) else raw, direction)


def request(id_: Any, method: str = "tools/list", direction: Direction = C2S, **params: Any) -> Message:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params:
        obj["params"] = params
    return Message.build(obj, direction)


def response(id_: Any, direction: Direction = S2C, result: Any = None) -> Message:
    return Message.build({"jsonrpc": "2.0", "id": id_, "result": result if result is not None else {}}, direction)


def notification(method: str = "notifications/progress", direction: Direction = C2S) -> Message:
    return Message.build({"jsonrpc": "2.0", "method": method}, direction)


class Spy:
    """Passes everything and remembers what it saw, with the context it saw it in."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: list[tuple[Message, Context]] = []
        self.events: list[dict[str, Any]] = []
        self.closed = False

    async def intercept(self, m: Message, ctx: Context) -> Message:
        self.seen.append((m, ctx))
        return m

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    async def aclose(self, reason: str = "client_closed") -> None:
        self.closed = True


class Verdict:
    """Applies `decide` to messages it selects; passes the others unchanged."""

    def __init__(self, decide: Callable[[Message], Message], select: Callable[[Message], bool] = lambda m: True,
                 name: str = "verdict") -> None:
        self.name = name
        self._decide = decide
        self._select = select

    async def intercept(self, m: Message, ctx: Context) -> Message:
        return self._decide(m) if self._select(m) else m

    async def aclose(self, reason: str = "client_closed") -> None:
        pass


def reject(text: str = "not allowed", **kw: Any) -> Callable[[Message], Message]:
    def decide(m: Message) -> Message:
        raise Rejected(text, **kw)
    return decide


def explode(m: Message) -> Message:
    raise KeyError("guard bug")


# -- correlation ------------------------------------------------------------------------------------------


async def test_response_context_carries_the_request_it_answers() -> None:
    spy = Spy()
    p = Pipeline([spy])
    req = request(1, "tools/call", name="lookup")
    await p.process(req)
    await p.process(response(1))
    (_, req_ctx), (_, resp_ctx) = spy.seen
    assert req_ctx.request is None
    assert resp_ctx.direction is S2C
    assert resp_ctx.request is req
    assert resp_ctx.method == "tools/call"
    assert resp_ctx.tool == "lookup"
    assert p.pending(C2S) == []


async def test_error_responses_are_correlated_too() -> None:
    spy = Spy()
    p = Pipeline([spy])
    req = request("a", "resources/read")
    await p.process(req)
    await p.process(msg('{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"x"}}', S2C))
    assert spy.seen[-1][1].request is req
    assert spy.seen[-1][1].method == "resources/read"
    assert spy.seen[-1][1].tool is None  # not a tools/call


async def test_correlation_respects_direction() -> None:
    # A server->client request (sampling, elicitation) is answered by the client, and a response travelling
    # the same way as a request does not answer it.
    spy = Spy()
    p = Pipeline([spy])
    server_req = request(1, "sampling/createMessage", direction=S2C)
    client_req = request(1, "tools/list", direction=C2S)
    await p.process(server_req)
    await p.process(client_req)
    await p.process(response(1, direction=C2S))
    assert spy.seen[-1][1].request is server_req
    assert p.pending(S2C) == []
    assert p.pending(C2S) == [client_req]
    await p.process(response(1, direction=S2C))
    assert spy.seen[-1][1].request is client_req


async def test_string_and_number_ids_are_different_requests() -> None:
    spy = Spy()
    p = Pipeline([spy])
    as_number = request(1, "tools/list")
    as_string = request("1", "prompts/list")
    await p.process(as_number)
    await p.process(as_string)
    assert len(p.pending(C2S)) == 2
    await p.process(response("1"))
    assert spy.seen[-1][1].request is as_string
    await p.process(response(1))
    assert spy.seen[-1][1].request is as_number


async def test_unknown_response_has_no_request_and_is_forwarded() -> None:
    spy = Spy()
    p = Pipeline([spy])
    r = response(99)
    out = await p.process(r)
    assert out.forward is r
    assert spy.seen[0][1].request is None
    assert spy.seen[0][1].method is None


async def test_a_response_is_correlated_once() -> None:
    spy = Spy()
    p = Pipeline([spy])
    await p.process(request(5))
    await p.process(response(5))
    await p.process(response(5))
    assert spy.seen[-1][1].request is None


async def test_pending_holds_the_request_as_forwarded() -> None:
    # A guard replaced the request; the response is correlated with what the server actually saw.
    def rewrite(m: Message) -> Message:
        return m.replace({**m.obj, "params": {"name": "masked"}})
    spy = Spy()
    p = Pipeline([Verdict(rewrite), spy])
    out = await p.process(request(3, "tools/call", name="secret"))
    assert p.pending(C2S) == [out.forward]
    await p.process(response(3))
    assert spy.seen[-1][1].tool == "masked"


async def test_forget_drops_a_pending_request() -> None:
    p = Pipeline([])
    req = request("x")
    await p.process(req)
    assert p.forget(C2S, 1) is None  # wrong id
    assert p.forget(S2C, "x") is None  # wrong direction
    assert p.forget(C2S, "x") is req
    assert p.pending(C2S) == []
    assert p.forget(C2S, "x") is None


async def test_notifications_are_not_pending() -> None:
    p = Pipeline([])
    await p.process(notification())
    assert p.pending(C2S) == []


# -- verdicts on single messages --------------------------------------------------------------------------


async def test_forward_unchanged_is_the_same_object() -> None:
    p = Pipeline([Spy(), Spy()])
    for m in (request(1), notification(), response(1)):
        out = await p.process(m)
        assert out.forward is m
        assert out.reply is None


async def test_guards_run_in_order_and_see_the_previous_guards_output() -> None:
    first = Verdict(lambda m: m.replace({**m.obj, "params": {"step": 1}}), name="first")
    spy = Spy()
    p = Pipeline([first, spy])
    out = await p.process(request(1))
    assert spy.seen[0][0].params == {"step": 1}
    assert out.forward is spy.seen[0][0]


async def test_replaced_request_is_forwarded() -> None:
    p = Pipeline([Verdict(lambda m: m.replace({**m.obj, "params": {"n": "****"}}))])
    out = await p.process(request(1, "tools/call", n="4111111111111111"))
    assert out.reply is None
    assert out.forward is not None
    assert out.forward.raw == b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n":"****"}}'


async def test_rejected_request_gets_an_error_back_to_its_sender() -> None:
    p = Pipeline([Verdict(reject("card data not allowed", code=REJECTED, data={"rule": "pan"}))])
    out = await p.process(request(4, direction=C2S))
    assert out.forward is None
    assert out.reply is not None
    assert out.reply.direction is S2C
    assert out.reply.obj == {"jsonrpc": "2.0", "id": 4, "error": {
        "code": REJECTED, "message": "card data not allowed", "data": {"rule": "pan"}}}
    assert p.pending(C2S) == []  # never reached the server


async def test_rejected_server_request_answers_the_server() -> None:
    p = Pipeline([Verdict(reject())])
    out = await p.process(request("s1", "sampling/createMessage", direction=S2C))
    assert out.forward is None
    assert out.reply is not None
    assert out.reply.direction is C2S
    assert out.reply.id == "s1"
    assert out.reply.obj["error"]["code"] == GUARD_ERROR


async def test_rejected_response_is_replaced_by_an_error_towards_the_receiver() -> None:
    p = Pipeline([Verdict(reject("result withheld"), select=lambda m: m.kind is Kind.RESPONSE)])
    await p.process(request("q"))
    out = await p.process(response("q", result={"pan": "4111111111111111"}))
    assert out.reply is None
    assert out.forward is not None
    assert out.forward.direction is S2C
    assert out.forward.obj == {"jsonrpc": "2.0", "id": "q", "error": {"code": GUARD_ERROR, "message": "result withheld"}}
    assert b"4111" not in out.forward.raw
    assert p.pending(C2S) == []


async def test_rejected_error_response_is_replaced_too() -> None:
    p = Pipeline([Verdict(reject("no"), select=lambda m: m.kind is Kind.ERROR)])
    out = await p.process(msg('{"jsonrpc":"2.0","id":2,"error":{"code":-5,"message":"secret detail"}}', S2C))
    assert out.forward is not None
    assert out.forward.obj["error"] == {"code": GUARD_ERROR, "message": "no"}
    assert out.forward.id == 2


async def test_rejected_notification_is_dropped() -> None:
    p = Pipeline([Verdict(reject())])
    out = await p.process(notification())
    assert out.forward is None
    assert out.reply is None


async def test_a_rejection_stops_later_guards() -> None:
    spy = Spy()
    p = Pipeline([Verdict(reject()), spy])
    await p.process(request(1))
    assert spy.seen == []


# -- failing closed ---------------------------------------------------------------------------------------


async def test_broken_guard_withholds_a_request_and_tells_the_sender(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "relay.pipeline")
    spy = Spy()
    p = Pipeline([Verdict(explode, name="masking"), spy])
    out = await p.process(request(8, "tools/call", name="x"))
    assert out.forward is None
    assert out.reply is not None
    assert out.reply.direction is S2C
    assert out.reply.obj["id"] == 8
    assert out.reply.obj["error"]["code"] == GUARD_ERROR
    assert "masking" in out.reply.obj["error"]["message"]
    assert "guard bug" not in out.reply.obj["error"]["message"]  # internals stay in the log
    assert spy.seen == []
    assert p.pending(C2S) == []
    assert "masking" in caplog.text


async def test_broken_guard_withholds_a_response() -> None:
    p = Pipeline([Verdict(explode, select=lambda m: m.kind is Kind.RESPONSE, name="masking")])
    await p.process(request(1))
    secret = response(1, result={"pan": "4111111111111111"})
    out = await p.process(secret)
    assert out.forward is not None
    assert out.forward is not secret
    assert out.forward.kind is Kind.ERROR
    assert out.forward.id == 1
    assert out.forward.direction is S2C
    assert b"4111" not in out.forward.raw


async def test_broken_guard_withholds_an_error_response() -> None:
    p = Pipeline([Verdict(explode)])
    original = msg('{"jsonrpc":"2.0","id":"e","error":{"code":-1,"message":"detail"}}', S2C)
    out = await p.process(original)
    assert out.forward is not None
    assert out.forward is not original
    assert out.forward.obj["error"]["code"] == GUARD_ERROR


async def test_broken_guard_withholds_a_notification() -> None:
    p = Pipeline([Verdict(explode)])
    out = await p.process(notification(direction=S2C))
    assert out.forward is None
    assert out.reply is None


@pytest.mark.parametrize("exc", [ValueError("x"), RuntimeError("x"), AssertionError("x"), TypeError("x")])
async def test_any_exception_fails_closed(exc: Exception) -> None:
    def boom(m: Message) -> Message:
        raise exc
    p = Pipeline([Verdict(boom)])
    out = await p.process(request(1))
    assert out.forward is None
    assert out.reply is not None
    assert out.reply.obj["error"]["code"] == GUARD_ERROR


# -- batches ----------------------------------------------------------------------------------------------

BATCH = (b'[ {"jsonrpc":"2.0","id":1,"method":"tools/list"},\n'
         b'  {"jsonrpc":"2.0","method":"notifications/x"},\n'
         b'  {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"refund"}} ]')


async def test_batch_forwarded_unchanged_keeps_its_raw_bytes() -> None:
    spy = Spy()
    p = Pipeline([spy])
    batch = msg(BATCH)
    out = await p.process(batch)
    assert out.forward is batch
    assert out.forward.raw == BATCH
    assert out.reply is None
    # Each element went through the guards and each request is pending.
    assert [m.kind for m, _ in spy.seen] == [Kind.REQUEST, Kind.NOTIFICATION, Kind.REQUEST]
    assert sorted(m.id for m in p.pending(C2S)) == [1, 2]


async def test_batch_with_one_rejected_request_forwards_the_rest_and_replies_with_a_batch() -> None:
    p = Pipeline([Verdict(reject("refunds need approval"), select=lambda m: m.params.get("name") == "refund")])
    out = await p.process(msg(BATCH))
    assert out.forward is not None
    assert out.forward.kind is Kind.BATCH
    assert out.forward.direction is C2S
    assert out.forward.obj == [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                               {"jsonrpc": "2.0", "method": "notifications/x"}]
    assert out.reply is not None
    assert out.reply.direction is S2C
    assert out.reply.obj == [{"jsonrpc": "2.0", "id": 2, "error": {"code": GUARD_ERROR, "message": "refunds need approval"}}]
    assert [m.id for m in p.pending(C2S)] == [1]


async def test_batch_with_every_element_rejected_forwards_nothing() -> None:
    p = Pipeline([Verdict(reject())])
    out = await p.process(msg(BATCH))
    assert out.forward is None
    assert out.reply is not None
    # Notifications get no answer; the two requests do.
    assert [e["id"] for e in out.reply.obj] == [1, 2]


async def test_batch_with_a_replaced_element_is_rebuilt() -> None:
    p = Pipeline([Verdict(lambda m: m.replace({**m.obj, "params": {"name": "masked"}}),
                          select=lambda m: m.kind is Kind.REQUEST and m.id == 2)])
    out = await p.process(msg(BATCH))
    assert out.forward is not None
    assert out.forward.obj[2]["params"] == {"name": "masked"}
    assert out.forward.obj[:2] == msg(BATCH).obj[:2]
    assert out.reply is None


async def test_batch_of_responses_with_a_rejected_one() -> None:
    p = Pipeline([Verdict(reject("withheld"), select=lambda m: m.id == 2)])
    await p.process(request(1))
    await p.process(request(2))
    out = await p.process(msg('[{"jsonrpc":"2.0","id":1,"result":{"a":1}},{"jsonrpc":"2.0","id":2,"result":{"b":2}}]', S2C))
    assert out.reply is None
    assert out.forward is not None
    assert out.forward.direction is S2C
    assert out.forward.obj == [{"jsonrpc": "2.0", "id": 1, "result": {"a": 1}},
                               {"jsonrpc": "2.0", "id": 2, "error": {"code": GUARD_ERROR, "message": "withheld"}}]
    assert p.pending(C2S) == []


async def test_batch_with_a_broken_guard_on_one_element_fails_closed_for_that_element() -> None:
    p = Pipeline([Verdict(explode, select=lambda m: m.id == 2)])
    out = await p.process(msg(BATCH))
    assert out.forward is not None
    assert [o.get("id") for o in out.forward.obj] == [1, None]
    assert out.reply is not None
    assert out.reply.obj[0]["id"] == 2
    assert out.reply.obj[0]["error"]["code"] == GUARD_ERROR


# -- report and close -------------------------------------------------------------------------------------


class Broken(Spy):
    name = "broken"

    def on_event(self, event: dict[str, Any]) -> None:
        raise OSError("disk full")

    async def aclose(self, reason: str = "client_closed") -> None:
        raise OSError("disk full")


async def test_report_reaches_every_guard_with_on_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "relay.pipeline")
    listening, broken, after = Spy(), Broken(), Spy()
    deaf = Verdict(lambda m: m)  # no on_event
    p = Pipeline([listening, deaf, broken, after])
    event = {"event": "client_fault", "reason": "garbage"}
    p.report(event)
    # A guard that cannot record does not stop the others from hearing about it.
    assert listening.events == [event]
    assert after.events == [event]
    assert "broken" in caplog.text


async def test_aclose_closes_every_guard_even_if_one_fails() -> None:
    first, broken, last = Spy(), Broken(), Spy()
    p = Pipeline([first, broken, last])
    await p.aclose()
    assert first.closed
    assert last.closed


@pytest.mark.anyio
async def test_a_cancelled_request_is_no_longer_pending() -> None:
    pipeline = Pipeline([])
    c2s = Direction.CLIENT_TO_SERVER
    await pipeline.process(Message.build({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {}}, c2s))
    await pipeline.process(Message.build({"jsonrpc": "2.0", "id": 8, "method": "ping"}, c2s))
    assert [m.id for m in pipeline.pending(c2s)] == [7, 8]
    await pipeline.process(Message.build(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}, c2s))
    assert [m.id for m in pipeline.pending(c2s)] == [8]
