"""One client session of `relay run --listen`: routing server messages to the client's open HTTP streams.

Answers go to the stream of the POST that asked; server-initiated messages to the latest open POST stream
(the SDKs relate them to the request in progress) or the standalone GET stream. Streams carry event ids,
so a client whose connection broke, or whose stream relay closed because the server closed it (SEP-1699
polling), resumes with GET and Last-Event-ID. Stateless (2026-07-28) requests from many clients share one
such session, each under a relay-unique id.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relay.jsonrpc import Kind, Message
from relay.transports import Fault
from relay.transports.mcp_headers import HeaderMirror
from relay.transports.sse_codec import encode_event

log = logging.getLogger("relay.listen")

SUBSCRIPTION_META = "io.modelcontextprotocol/subscriptionId"
BACKLOG = 1000  # server messages held for a client with no stream open
HISTORY = 256  # events kept per stream for replay after a reconnect
DETACHED = 64  # unanswered streams kept for a client that went away
# Answered streams kept for replay: a write to a connection that just died is lost without an error.
FINISHED = 64
FINISHED_BYTES = 4 * 1024 * 1024
RETRY_MS = 1000
_PRIMING_FROM = "2025-11-25"  # SEP-1699: priming events for clients of this revision and later


class Pause:
    """Sentinel on a stream: end the HTTP response now; the client resumes later (SEP-1699)."""


PAUSE = Pause()
Item = Message | Pause | None  # None: the session is over


class ClientStream:
    """A stream of server messages towards the client: a POST's answers, or the standalone GET stream."""

    def __init__(self, number: int, pending: set[Any] | None) -> None:
        self.number = number
        self.pending = pending  # request ids still unanswered; None for the GET stream (never done)
        self.send: MemoryObjectSendStream[Item]
        self.receive: MemoryObjectReceiveStream[Item]
        self.send, self.receive = anyio.create_memory_object_stream[Item](math.inf)
        self.attached = False  # an HTTP response is writing it right now
        self.released = anyio.Event()  # set when that response ends
        self.polling = False  # primed for SEP-1699: relay may close it and let the client resume
        self._seq = 0
        self._history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY)

    @property
    def history_bytes(self) -> int:
        return sum(len(data) for _, data in self._history)

    @property
    def done(self) -> bool:
        return self.pending is not None and not self.pending

    def event(self, msg: Message, with_id: bool) -> bytes:
        """The SSE bytes for `msg`, remembered for replay; marks the requests it answers."""
        if self.pending:
            for item in msg.obj if msg.kind is Kind.BATCH else (msg.obj,):
                if isinstance(item, dict) and "method" not in item:
                    self.pending.discard(item.get("id"))
        if not with_id:
            return encode_event(msg.raw, event="message")
        self._seq += 1
        data = encode_event(msg.raw, event="message", id=f"{self.number}-{self._seq}")
        self._history.append((self._seq, data))
        return data

    def drop_pauses(self) -> None:
        """Forget a pause the previous response did not live to read; keep everything else in order."""
        kept: list[Item] = []
        while True:
            try:
                item = self.receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            if item is not PAUSE:
                kept.append(item)
        for item in kept:
            self.send.send_nowait(item)

    def priming(self) -> bytes:
        return f"id: {self.number}-{self._seq}\nretry: {RETRY_MS}\ndata: \n\n".encode()

    def replay_after(self, seq: int) -> list[bytes]:
        return [data for n, data in self._history if n > seq]


class ListenSession:
    """The client side of one relay session, fed by HTTP requests. Implements the Transport interface."""

    def __init__(self, session_id: str | None, legacy: bool = False) -> None:
        self.id = session_id
        self.legacy = legacy
        self.protocol_version: str | None = None
        self._in_send: MemoryObjectSendStream[Message | Fault]
        self._in_recv: MemoryObjectReceiveStream[Message | Fault]
        self._in_send, self._in_recv = anyio.create_memory_object_stream[Message | Fault](math.inf)
        self._numbers = 0
        self.streams: dict[int, ClientStream] = {}
        self._by_id: dict[tuple[bool, Any], ClientStream] = {}
        self._by_token: dict[tuple[bool, Any], ClientStream] = {}
        self._posts: list[ClientStream] = []
        self._detached: deque[ClientStream] = deque()
        self._finished: deque[ClientStream] = deque()
        self.get_stream: ClientStream | None = None
        self._backlog: list[Message] = []
        self.closed = anyio.Event()
        self.mirror = HeaderMirror()
        self._watch: dict[tuple[bool, Any], str] = {}  # request ids whose answers relay reads (initialize, tools/list)
        self._aliases: dict[tuple[bool, Any], Any] = {}
        self._token_aliases: dict[tuple[bool, Any], Any] = {}

    @property
    def resumable(self) -> bool:
        """Event ids and replay: for session clients (2026-07-28 has no resumption)."""
        return self.id is not None and not self.legacy

    def primes(self, version_header: str | None) -> bool:
        """SEP-1699 priming and polling, for clients at 2025-11-25 or later (as this request says it is)."""
        version = version_header or self.protocol_version or ""
        return self.resumable and version >= _PRIMING_FROM

    # Transport interface, as seen by the relay Session --------------------------------------------

    async def receive(self) -> Message | Fault:
        return await self._in_recv.receive()

    async def send(self, msg: Message) -> None:
        obj = msg.obj
        if isinstance(obj, dict):
            if "method" not in obj:
                self._note_answer(obj)
            elif self._aliases and isinstance(msg.params.get("_meta"), dict) and SUBSCRIPTION_META in msg.params["_meta"]:
                # 2026-07-28 subscriptions/listen: its notifications belong to the listen request's stream.
                meta = msg.params["_meta"]
                key = _key(meta[SUBSCRIPTION_META])
                target = self._by_id.get(key)
                original = self._aliases.get(key, _NO_ALIAS)
                if original is not _NO_ALIAS:
                    msg = msg.replace({**obj, "params": {**msg.params, "_meta": {**meta, SUBSCRIPTION_META: original}}})
                if target is not None:
                    await self._put(target, msg)
                    return
            elif self._token_aliases and obj.get("method") == "notifications/progress":
                alias = _key(msg.params.get("progressToken"))
                token = self._token_aliases.get(alias, _NO_ALIAS)
                if token is not _NO_ALIAS:
                    # Routed by the alias, delivered with the client's own token.
                    target = self._by_token.get(alias)
                    msg = msg.replace({**obj, "params": {**msg.params, "progressToken": token}})
                    if target is not None:
                        await self._put(target, msg)
                        return
        stream = self._route(msg)
        if isinstance(obj, dict) and "method" not in obj and self._aliases:
            original = self._aliases.pop(_key(obj.get("id")), _NO_ALIAS)
            if original is not _NO_ALIAS:
                msg = msg.replace({**obj, "id": original})
        if stream is None:
            if len(self._backlog) >= BACKLOG:
                log.warning("client has no open stream; dropping a %s", msg.method or msg.kind.value)
                return
            self._backlog.append(msg)
            return
        await self._put(stream, msg)

    async def pause(self, request_ids: tuple[Any, ...]) -> None:
        """The server closed the stream of these requests to be polled: close ours too (SEP-1699)."""
        if not self.resumable:
            return
        for id_ in request_ids:
            stream = self._by_id.get(_key(id_))
            if stream is not None and stream.attached and stream.polling:
                stream.send.send_nowait(PAUSE)

    async def aclose(self) -> None:
        self.end()

    def _note_answer(self, obj: dict[str, Any]) -> None:
        watched = self._watch.pop(_key(obj.get("id")), None)
        if watched == "initialize":
            result = obj.get("result")
            version = result.get("protocolVersion") if isinstance(result, dict) else None
            if isinstance(version, str):
                self.protocol_version = version
        elif watched == "tools/list":
            self.mirror.learn_tools(obj.get("result"))

    async def _put(self, stream: ClientStream, msg: Message) -> None:
        try:
            await stream.send.send(msg)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.warning("client stream closed before a %s could be delivered", msg.method or msg.kind.value)

    # Stateless requests ---------------------------------------------------------------------------

    def alias(self, msg: Message) -> Message:
        """The request with a relay-unique id (and progress token), remembered to be undone on the way back."""
        self._numbers += 1
        internal = f"relay-{self._numbers}"
        obj = dict(msg.obj)
        self._aliases[_key(internal)] = obj["id"]
        obj["id"] = internal
        params = obj.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(params, dict) and isinstance(meta, dict) and "progressToken" in meta:
            token = f"{internal}-progress"
            self._token_aliases[_key(token)] = meta["progressToken"]
            obj["params"] = {**params, "_meta": {**meta, "progressToken": token}}
        return msg.replace(obj)

    def forget_alias(self, msg: Message) -> None:
        self._aliases.pop(_key(msg.obj.get("id")), None)
        meta = msg.params.get("_meta")
        if isinstance(meta, dict):
            self._token_aliases.pop(_key(meta.get("progressToken")), None)

    # HTTP side ---------------------------------------------------------------------------------------

    async def deliver(self, item: Message | Fault) -> None:
        await self._in_send.send(item)

    def end(self) -> None:
        """The client deleted the session or relay stops: the relay Session sees end of input."""
        self._in_send.close()
        for stream in self.streams.values():
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.send.send_nowait(None)
        self.closed.set()

    def _new_stream(self, pending: set[Any] | None) -> ClientStream:
        self._numbers += 1
        stream = ClientStream(self._numbers, pending)
        self.streams[stream.number] = stream
        return stream

    def open_post(self, msg: Message, version_header: str | None = None) -> ClientStream:
        pending: set[Any] = set()
        stream = self._new_stream(pending)
        stream.polling = self.primes(version_header)
        for item in msg.obj if msg.kind is Kind.BATCH else [msg.obj]:
            if isinstance(item, dict) and "method" in item and "id" in item:
                key = _key(item["id"])
                pending.add(item["id"])
                self._by_id[key] = stream
                if item["method"] in ("initialize", "tools/list"):
                    self._watch[key] = item["method"]
                params = item.get("params")
                meta = params.get("_meta") if isinstance(params, dict) else None
                if isinstance(meta, dict) and "progressToken" in meta:
                    self._by_token[_key(meta["progressToken"])] = stream
        self._posts.append(stream)
        return stream

    def release(self, stream: ClientStream) -> None:
        """The HTTP response writing `stream` ended: forget it if it is done, else keep it for a resume."""
        stream.attached = False
        stream.released.set()
        with contextlib.suppress(ValueError):
            self._posts.remove(stream)
        if stream is self.get_stream:
            self.get_stream = None
        if not self.resumable:
            self._forget(stream)
            return
        if stream.done:
            self._retire(stream)
            return
        if stream in self._detached:
            return
        self._detached.append(stream)
        while len(self._detached) > DETACHED:
            self._forget(self._detached.popleft())

    def _retire(self, stream: ClientStream) -> None:
        """An answered stream: nothing more is routed to it, but its events stay replayable for a while."""
        self._unroute(stream)
        with contextlib.suppress(ValueError):
            self._detached.remove(stream)
        self._finished.append(stream)
        while len(self._finished) > FINISHED or sum(s.history_bytes for s in self._finished) > FINISHED_BYTES:
            self._forget(self._finished.popleft())

    def _unroute(self, stream: ClientStream) -> None:
        for table in (self._by_id, self._by_token):
            for key in [k for k, v in table.items() if v is stream]:
                del table[key]

    def _forget(self, stream: ClientStream) -> None:
        stream.receive.close()
        self.streams.pop(stream.number, None)
        with contextlib.suppress(ValueError):
            self._detached.remove(stream)
        with contextlib.suppress(ValueError):
            self._finished.remove(stream)
        self._unroute(stream)

    def open_get(self, version_header: str | None = None) -> ClientStream:
        stream = self._new_stream(None)
        stream.polling = self.primes(version_header)
        if self.get_stream is not None:
            self._forget(self.get_stream)
        self.get_stream = stream
        for msg in self._backlog:
            stream.send.send_nowait(msg)
        self._backlog.clear()
        return stream

    async def resume(self, last_event_id: str) -> tuple[ClientStream, list[bytes]] | None:
        """The stream a Last-Event-ID belongs to, and the events after it the client has not seen.

        A reconnecting client may be quicker than relay's notice that its old connection is gone: the old
        response is then told to end, and the new one takes over."""
        number, _, seq = last_event_id.partition("-")
        if not (number.isdigit() and seq.isdigit()):
            return None
        stream = self.streams.get(int(number))
        if stream is None:
            return None
        if stream.attached:
            stream.send.send_nowait(PAUSE)
            with anyio.move_on_after(2):
                await stream.released.wait()
            if stream.attached or stream.number not in self.streams:
                return None
        with contextlib.suppress(ValueError):
            self._detached.remove(stream)
        with contextlib.suppress(ValueError):
            self._finished.remove(stream)
        if stream.pending is None:
            self.get_stream = stream
        elif not stream.done:
            self._posts.append(stream)
        stream.attached, stream.released = True, anyio.Event()
        stream.drop_pauses()
        return stream, stream.replay_after(int(seq))

    def _route(self, msg: Message) -> ClientStream | None:
        if self.legacy:
            return self.get_stream
        obj = msg.obj
        if isinstance(obj, dict):
            if "method" not in obj:
                stream = self._by_id.pop(_key(obj.get("id")), None)
                if stream is not None:
                    return stream
            elif obj.get("method") == "notifications/progress":
                stream = self._by_token.get(_key(msg.params.get("progressToken")))
                if stream is not None:
                    return stream
        # Server-initiated: the stream of the latest request still open (the SDKs send messages
        # related to a request there), else the standalone GET stream.
        if self._posts:
            return self._posts[-1]
        return self.get_stream


def _key(value: Any) -> tuple[bool, Any]:
    return (isinstance(value, str), value)


_NO_ALIAS = object()
