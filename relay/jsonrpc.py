"""JSON-RPC 2.0 messages as relay sees them: the exact bytes, the parsed object and the direction.

Relay forwards the bytes it received unless a guard replaces the message, so `Message.raw` is kept
alongside the parsed `obj`; classification is done once, at parse time.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (-32000 to -32099), used for what relay itself decides.
UPSTREAM_ERROR = -32000
REQUEST_TOO_LARGE = -32001
GUARD_ERROR = -32002
REJECTED = -32003
LOGIN_REQUIRED = -32004
URL_ELICITATION_REQUIRED = -32042  # MCP 2025-11-25: the client should show the URL, then retry

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; accepting them would make messages relay cannot re-serialise.
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A duplicate key means two readers may see two different messages: the masker would check the value
    # Python keeps (the last) while a client that keeps the first gets the other, unmasked. Refuse it.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {json.dumps(key)[:80]} in an object")
            seen.add(key)
    return obj


_loads = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique_keys).decode
# Strict JSON for whatever relay must read one way only (messages, transcript records): ValueError otherwise.
strict_loads = _loads


class Direction(enum.Enum):
    CLIENT_TO_SERVER = "client->server"
    SERVER_TO_CLIENT = "server->client"

    @property
    def reverse(self) -> Direction:
        return Direction.SERVER_TO_CLIENT if self is Direction.CLIENT_TO_SERVER else Direction.CLIENT_TO_SERVER

    @property
    def short(self) -> str:
        return "c2s" if self is Direction.CLIENT_TO_SERVER else "s2c"


class Kind(enum.Enum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"
    ERROR = "error"
    BATCH = "batch"


class ParseFailure(ValueError):
    """Bytes that are not a JSON-RPC message; `code` is the JSON-RPC error code to answer with."""

    def __init__(self, reason: str, code: int = PARSE_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def classify(obj: Any) -> Kind:
    if isinstance(obj, dict):
        if "id" in obj:
            id_ = obj["id"]
            # JSON-RPC ids are strings, numbers or null; a boolean is not a number here.
            if isinstance(id_, bool) or not (id_ is None or isinstance(id_, (str, int, float))):
                raise ParseFailure("not a JSON-RPC message: id must be a string, number or null", INVALID_REQUEST)
        if "method" in obj:
            return Kind.REQUEST if "id" in obj else Kind.NOTIFICATION
        if "error" in obj:
            return Kind.ERROR
        if "result" in obj:
            return Kind.RESPONSE
        raise ParseFailure("not a JSON-RPC message: no method, result or error", INVALID_REQUEST)
    if isinstance(obj, list):
        if not obj:
            raise ParseFailure("empty batch", INVALID_REQUEST)
        for item in obj:
            if not isinstance(item, dict):
                raise ParseFailure("a batch holds JSON-RPC message objects only", INVALID_REQUEST)
            classify(item)
        return Kind.BATCH
    raise ParseFailure("not a JSON-RPC message: expected an object or array", INVALID_REQUEST)


@dataclass(slots=True, eq=False)
class Message:
    """One JSON-RPC message (or batch) travelling in one direction."""

    raw: bytes
    obj: Any
    kind: Kind
    direction: Direction

    @classmethod
    def parse(cls, raw: bytes, direction: Direction) -> Message:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseFailure(f"message is not valid UTF-8 (byte {exc.start})") from None
        try:
            obj = _loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the decoder goes
            raise ParseFailure(f"invalid JSON: {exc}") from None
        return cls(raw, obj, classify(obj), direction)

    @classmethod
    def build(cls, obj: Any, direction: Direction) -> Message:
        return cls(_dumps(obj).encode("utf-8"), obj, classify(obj), direction)

    def replace(self, obj: Any) -> Message:
        """A new message with the same direction and `obj` as its content."""
        return Message.build(obj, self.direction)

    @property
    def id(self) -> Any:
        return self.obj.get("id") if isinstance(self.obj, dict) else None

    @property
    def method(self) -> str | None:
        m = self.obj.get("method") if isinstance(self.obj, dict) else None
        return m if isinstance(m, str) else None

    @property
    def params(self) -> dict[str, Any]:
        p = self.obj.get("params") if isinstance(self.obj, dict) else None
        return p if isinstance(p, dict) else {}

    def items(self) -> list[Message]:
        """The messages of a batch (or this message alone), as messages of their own."""
        if self.kind is not Kind.BATCH:
            return [self]
        return [Message(_dumps(o).encode("utf-8"), o, classify(o), self.direction) for o in self.obj]

    def line(self) -> bytes:
        """The message as one line for newline-delimited framing, without re-serialising when possible."""
        raw = self.raw
        if b"\n" in raw or b"\r" in raw:
            # Pretty-printed JSON from an HTTP server: newline framing needs it on one line.
            raw = _dumps(self.obj).encode("utf-8")
        return raw + b"\n"


def error_obj(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def error_message(id_: Any, code: int, message: str, direction: Direction, data: Any = None) -> Message:
    return Message.build(error_obj(id_, code, message, data), direction)


def request_ids(msg: Message) -> list[Any]:
    """The ids of the requests in a message or batch (what a response must answer)."""
    return [m["id"] for m in (msg.obj if msg.kind is Kind.BATCH else [msg.obj])
            if isinstance(m, dict) and "method" in m and "id" in m]


def dumps(obj: Any) -> str:
    return _dumps(obj)
