"""A relay session: pumps messages between the client and the upstream transport through the pipeline."""

from __future__ import annotations

import itertools
import logging
import secrets
from typing import Any

import anyio
from anyio.abc import TaskGroup

from relay.errors import UpstreamError
from relay.jsonrpc import UPSTREAM_ERROR, Direction, Kind, Message, error_message
from relay.pipeline import PeerRefused, Pipeline
from relay.transports import Fault, Pausable, Paused, Transport

log = logging.getLogger("relay.session")

DRAIN_SECONDS = 10.0


class Session:
    """Runs until the client closes (returns) or the upstream fails (raises UpstreamError)."""

    def __init__(self, client: Transport, upstream: Transport, pipeline: Pipeline, *,
                 drain_seconds: float = DRAIN_SECONDS) -> None:
        self.client = client
        self.upstream = upstream
        self.pipeline = pipeline
        self.drain_seconds = drain_seconds
        self._failure: UpstreamError | None = None
        self._answered = anyio.Event()
        self._tg: TaskGroup
        # Requests relay itself sent to the client (elicitation), by id: their answers come here, not upstream.
        # The ids carry a random tag so that they cannot be taken for the server's own requests.
        self._asked: dict[str, tuple[anyio.Event, list[Message]]] = {}
        self._ask_prefix = f"relay-{secrets.token_hex(4)}-"
        self._ask_ids = (f"{self._ask_prefix}{n}" for n in itertools.count(1))
        self._has_asked = False

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._guarded, self._server_to_client, tg.cancel_scope)
            await self._guarded(self._client_to_server, tg.cancel_scope)
            if self._failure is None:
                await self._drain()
            tg.cancel_scope.cancel()
        if self._failure is not None:
            await self._fail_pending(self._failure)
            raise self._failure

    async def _guarded(self, pump: Any, scope: anyio.CancelScope) -> None:
        try:
            await pump()
        except UpstreamError as exc:
            if self._failure is None:
                self._failure = exc
            scope.cancel()

    async def _drain(self) -> None:
        """The client stopped sending; give answers already on their way a bounded time to arrive."""
        with anyio.move_on_after(self.drain_seconds):
            while self.pipeline.pending(Direction.CLIENT_TO_SERVER) and self._failure is None:
                self._answered = anyio.Event()
                await self._answered.wait()

    async def _client_to_server(self) -> None:
        client, pipeline = self.client, self.pipeline
        while True:
            try:
                item = await client.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            if isinstance(item, Fault):
                log.warning("client sent an unusable message: %s", item.reason)
                pipeline.report({"event": "client_fault", "reason": item.reason, "code": item.code})
                # An oversize request still gets an answer with its own id, so the client does not hang;
                # a candidate id that is already in flight cannot be this request's.
                pending = {r.id for r in pipeline.pending(Direction.CLIENT_TO_SERVER)}
                id_ = next((i for i in item.request_ids if i not in pending), None)
                await self._to_client(error_message(id_, item.code, item.reason, Direction.SERVER_TO_CLIENT))
                continue
            if isinstance(item, Paused):
                continue  # only servers poll
            if self._has_asked and (item.kind is Kind.RESPONSE or item.kind is Kind.ERROR):
                id_ = item.obj.get("id")
                if isinstance(id_, str) and id_.startswith(self._ask_prefix):
                    # An answer to relay's own question: never for the server, also when it comes too late.
                    waiter = self._asked.get(id_)
                    if waiter is not None:
                        waiter[1].append(item)
                        waiter[0].set()
                    else:
                        log.info("the client answered relay's request %s after it was withdrawn", id_)
                    continue
            if pipeline.holds(item):
                # It may wait (for a human): in a task of its own, so that the client's other messages
                # (other calls, a cancellation of this one) go on meanwhile.
                self._tg.start_soon(self._guarded, lambda m=item: self._from_client(m), self._tg.cancel_scope)
                continue
            await self._from_client(item)

    async def _from_client(self, item: Message) -> None:
        outcome = await self.pipeline.process(item, to_sender=self._to_client, ask_sender=self.ask_client)
        if outcome.reply is not None:
            await self._to_client(outcome.reply)
        if outcome.forward is not None:
            await self.upstream.send(outcome.forward)

    async def ask_client(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send the client a request of relay's own and wait for its result; cancelling the wait tells the client
        the request is cancelled. Raises PeerRefused when the client answers with an error."""
        id_ = next(self._ask_ids)
        self._has_asked = True
        done, box = anyio.Event(), list[Message]()
        self._asked[id_] = (done, box)
        try:
            await self._to_client(Message.build({"jsonrpc": "2.0", "id": id_, "method": method, "params": params},
                                                Direction.SERVER_TO_CLIENT))
            await done.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                note = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id_, "reason": "relay no longer needs the answer"}}
                await self._to_client(Message.build(note, Direction.SERVER_TO_CLIENT))
            raise
        finally:
            del self._asked[id_]
        answer = box[0].obj
        result = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(result, dict):
            return result
        error = answer.get("error") if isinstance(answer, dict) else None
        text = error.get("message") if isinstance(error, dict) else None
        raise PeerRefused(f"the client answered {method} with an error: {str(text)[:200]}" if text
                          else f"the client's answer to {method} is not a result")

    async def _server_to_client(self) -> None:
        upstream, pipeline = self.upstream, self.pipeline
        while True:
            try:
                item = await upstream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                raise UpstreamError("upstream closed the connection") from None
            if isinstance(item, Fault):
                await self._upstream_fault(item)
                continue
            if isinstance(item, Paused):
                if isinstance(self.client, Pausable):
                    await self.client.pause(item.request_ids)
                continue
            outcome = await pipeline.process(item)
            if outcome.reply is not None:
                await upstream.send(outcome.reply)
            if outcome.forward is not None:
                await self._to_client(outcome.forward)
            self._answered.set()

    async def _upstream_fault(self, fault: Fault) -> None:
        self.pipeline.report({"event": "upstream_fault", "reason": fault.reason, "code": fault.code,
                              "ids": list(fault.request_ids)})
        answered = False
        for id_ in fault.request_ids:
            if self.pipeline.forget(Direction.CLIENT_TO_SERVER, id_) is not None:
                answered = True
                await self._to_client(error_message(id_, fault.code, fault.reason, Direction.SERVER_TO_CLIENT))
        if answered:
            self._answered.set()
            return
        log.warning("upstream: %s", fault.reason)
        # Nobody to answer: tell the client through MCP's own logging channel what was dropped and why.
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {
            "level": "error", "logger": "relay",
            "data": f"relay dropped a message from the server: {fault.reason} (code {fault.code})"}}
        await self._to_client(Message.build(note, Direction.SERVER_TO_CLIENT))

    async def _to_client(self, msg: Message) -> None:
        try:
            await self.client.send(msg)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.info("client went away; a %s message was not delivered", msg.kind.value)

    async def _fail_pending(self, exc: UpstreamError) -> None:
        """Every request still waiting gets an error naming the cause."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            for request in self.pipeline.pending(Direction.CLIENT_TO_SERVER):
                self.pipeline.forget(Direction.CLIENT_TO_SERVER, request.id)
                self.pipeline.report({"event": "upstream_failed", "reason": str(exc), "id": request.id})
                await self._to_client(error_message(request.id, UPSTREAM_ERROR, str(exc), Direction.SERVER_TO_CLIENT))
