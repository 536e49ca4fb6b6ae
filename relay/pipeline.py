"""The guard chain: an ordered list of interceptors that see every message, and request/response correlation.

The pipeline knows nothing about card numbers, approvals or transcripts. It runs each message through the
interceptors in order; each may forward it, replace it, or reject it. It fails closed: an exception in a
guard never lets the message through.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.errors import GuardError
from relay.jsonrpc import GUARD_ERROR, INVALID_REQUEST, Direction, Kind, Message, error_message

log = logging.getLogger("relay.pipeline")


class PeerRefused(Exception):
    """The peer answered a request relay itself sent (an elicitation) with a JSON-RPC error; the message says so."""


Ask = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class Rejected(Exception):
    """Raised by an interceptor to stop a message; the sender (or, for a response, the receiver) is told why.

    With `result`, a stopped request is answered with that JSON-RPC result instead of an error (a tool call
    denied by policy is a tool result with `isError: true`, which an agent can read and act on).
    """

    def __init__(self, message: str, *, code: int = GUARD_ERROR, data: Any = None,
                 result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data
        self.result = result


@dataclass(slots=True)
class Context:
    """What an interceptor knows about the message in hand."""

    direction: Direction
    # For a response or error: the request it answers, as it was forwarded.
    request: Message | None = None
    # Metadata guards attach for later guards (e.g. masking actions for the recorder); never clear data.
    notes: list[dict[str, Any]] = field(default_factory=list)
    # What transcripts store in place of the message, when that differs from what is forwarded
    # (a request passed to the server as sent, recorded masked).
    record: Message | None = None
    # Sends a message back to this message's sender while it is being processed (progress while a call
    # waits for approval); None where nobody can be told.
    to_sender: Callable[[Message], Awaitable[None]] | None = None
    # Sends a request of relay's own to this message's sender and returns its result (raises PeerRefused on an
    # error answer); None where the sender cannot be asked.
    ask_sender: Ask | None = None

    @property
    def method(self) -> str | None:
        return self.request.method if self.request is not None else None

    @property
    def tool(self) -> str | None:
        """The tool name, for a tools/call request or its response."""
        if self.request is None or self.request.method != "tools/call":
            return None
        name = self.request.params.get("name")
        return name if isinstance(name, str) else None


class Interceptor(Protocol):
    """A guard. Return the message to forward (the same object to pass it unchanged), or raise Rejected."""

    name: str

    async def intercept(self, msg: Message, ctx: Context) -> Message: ...

    async def aclose(self, reason: str = "client_closed") -> None: ...


@dataclass(slots=True)
class Outcome:
    """What to do with a processed message: forward it onwards and/or answer the sender."""

    forward: Message | None
    reply: Message | None = None


def _key(id_: Any) -> tuple[bool, Any]:
    # JSON-RPC ids are strings or numbers; "1" and 1 are different requests.
    return (isinstance(id_, str), id_)


class Pipeline:
    """Runs messages through the interceptors and correlates responses with their requests."""

    def __init__(self, interceptors: Sequence[Interceptor]) -> None:
        self.interceptors = tuple(interceptors)
        self._listeners = tuple(g for g in self.interceptors if callable(getattr(g, "on_event", None)))
        self._holders: tuple[Any, ...] = tuple(g for g in self.interceptors if callable(getattr(g, "holds", None)))
        self._pending: dict[Direction, dict[tuple[bool, Any], Message]] = {
            Direction.CLIENT_TO_SERVER: {},
            Direction.SERVER_TO_CLIENT: {},
        }

    def pending(self, direction: Direction) -> list[Message]:
        """Requests sent in `direction` that have not been answered yet."""
        return list(self._pending[direction].values())

    def forget(self, direction: Direction, id_: Any) -> Message | None:
        """Drop a pending request (answered by relay itself, e.g. with an upstream error)."""
        return self._pending[direction].pop(_key(id_), None)

    def holds(self, msg: Message) -> bool:
        """Whether a guard may keep this message waiting (a call awaiting approval): the session then processes
        it in a task of its own, so that other messages are not held up behind it."""
        return any(guard.holds(msg) for guard in self._holders)

    async def process(self, msg: Message, *, to_sender: Callable[[Message], Awaitable[None]] | None = None,
                      ask_sender: Ask | None = None) -> Outcome:
        if msg.kind is Kind.BATCH:
            return await self._process_batch(msg)
        return await self._process_one(msg, to_sender, ask_sender)

    async def _process_one(self, msg: Message, to_sender: Callable[[Message], Awaitable[None]] | None = None,
                           ask_sender: Ask | None = None) -> Outcome:
        direction = msg.direction
        ctx = Context(direction, to_sender=to_sender, ask_sender=ask_sender)
        kind = msg.kind
        if kind is Kind.RESPONSE or kind is Kind.ERROR:
            ctx.request = self._pending[direction.reverse].pop(_key(msg.obj.get("id")), None)
        out = msg
        try:
            for guard in self.interceptors:
                out = await guard.intercept(out, ctx)
        except Rejected as exc:
            if exc.result is not None and kind is Kind.REQUEST:
                answer = {"jsonrpc": "2.0", "id": msg.obj["id"], "result": exc.result}
                return Outcome(None, Message.build(answer, direction.reverse))
            return self._rejected(msg, exc.code, exc.message, exc.data)
        except GuardError as exc:  # a guard that knows why it cannot do its job says so (never with a secret)
            name = getattr(guard, "name", type(guard).__name__)
            log.error("guard %s: %s", name, exc)
            return self._rejected(msg, GUARD_ERROR, f"relay withheld the message: {exc}", None)
        except Exception as exc:  # fail closed: a broken guard never lets a message through
            name = getattr(guard, "name", type(guard).__name__)
            log.error("guard %s failed on a %s %s: %s", name, direction.value, kind.value, exc, exc_info=exc)
            return self._rejected(msg, GUARD_ERROR, f"relay guard '{name}' failed; message withheld", None)
        if kind is Kind.REQUEST:
            self._pending[direction][_key(msg.obj["id"])] = out
        elif kind is Kind.NOTIFICATION and msg.method == "notifications/cancelled":
            # A cancelled request may never be answered (the spec asks servers not to): stop waiting for it.
            self._pending[direction].pop(_key(msg.params.get("requestId")), None)
        return Outcome(out)

    def _rejected(self, msg: Message, code: int, text: str, data: Any) -> Outcome:
        kind = msg.kind
        if kind is Kind.REQUEST:
            # The sender asked; the sender gets the error.
            return Outcome(None, error_message(msg.obj["id"], code, text, msg.direction.reverse, data))
        if kind is Kind.RESPONSE or kind is Kind.ERROR:
            # The receiver is waiting for an answer; it gets an error in place of the withheld one.
            return Outcome(error_message(msg.obj.get("id"), code, text, msg.direction, data))
        log.warning("%s notification %s withheld: %s", msg.direction.value, msg.method, text)
        return Outcome(None)

    async def _process_batch(self, msg: Message) -> Outcome:
        forwards: list[Message] = []
        replies: list[Message] = []
        changed = False
        try:
            items = msg.items()
        except (ValueError, RecursionError):
            # Nested deeper than relay can re-serialise: refuse it whole, never pass it unchecked.
            refusal = error_message(None, INVALID_REQUEST, "batch too deeply nested", msg.direction.reverse)
            return Outcome(None, refusal if msg.direction is Direction.CLIENT_TO_SERVER else None)
        item: Message
        for item in items:
            outcome = await self._process_one(item)
            if outcome.forward is not item:
                changed = True
            if outcome.forward is not None:
                forwards.append(outcome.forward)
            if outcome.reply is not None:
                replies.append(outcome.reply)
        forward: Message | None
        if not changed:
            forward = msg
        elif forwards:
            forward = Message.build([m.obj for m in forwards], msg.direction)
        else:
            forward = None
        reply = Message.build([m.obj for m in replies], msg.direction.reverse) if replies else None
        return Outcome(forward, reply)

    def report(self, event: dict[str, Any]) -> None:
        """Tell the guards that keep records (the recorder) about something relay itself did or saw."""
        for guard in self._listeners:
            try:
                guard.on_event(event)  # type: ignore[attr-defined]
            except Exception as exc:
                log.error("guard %s could not record an event: %s", getattr(guard, "name", guard), exc)

    async def serve(self) -> None:
        """Run the guards' background work (e.g. the recorder's group commit) until cancelled."""
        import anyio

        async with anyio.create_task_group() as tg:
            for guard in self.interceptors:
                serve = getattr(guard, "serve", None)
                if serve is not None:
                    tg.start_soon(serve)

    async def aclose(self, reason: str = "client_closed") -> None:
        """End the session for every guard; `reason` is what the transcript's seal records."""
        for guard in reversed(self.interceptors):
            try:
                await guard.aclose(reason)
            except Exception as exc:
                log.error("guard %s failed to close: %s", getattr(guard, "name", guard), exc)
