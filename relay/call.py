"""`relay call`: relay itself plays the MCP client for one tool call, through the same guards as `relay run`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio

from relay import __version__
from relay.errors import CallFailed, UsageError
from relay.jsonrpc import METHOD_NOT_FOUND, Direction, Kind, Message, dumps, error_obj
from relay.transports.memory import MemoryTransport

CLIENT_PROTOCOL_VERSION = "2025-11-25"


@dataclass(frozen=True)
class CallSpec:
    tool: str
    arguments: dict[str, Any]
    untyped: dict[str, str]  # --arg values still to be typed by the tool's input schema

    @classmethod
    def parse(cls, tool: str, pairs: list[str], json_text: str | None) -> CallSpec:
        arguments: dict[str, Any] = {}
        if json_text is not None:
            try:
                value = json.loads(json_text)
            except ValueError as exc:
                raise UsageError(f"--json is not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise UsageError("--json must be a JSON object of arguments")
            arguments.update(value)
        untyped: dict[str, str] = {}
        for pair in pairs:
            key, sep, value_text = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"--arg wants KEY=VALUE, got '{pair}'")
            untyped[key] = value_text
        return cls(tool, arguments, untyped)


def coerce(value: str, schema: Any) -> Any:
    """Type a command-line value by the JSON Schema of its property; strings stay strings."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    kinds = kind if isinstance(kind, list) else [kind]
    if "string" in kinds:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class ScriptedClient:
    """Relay playing an MCP client over an in-memory transport (for `relay call` and `relay demo`)."""

    def __init__(self, transport: MemoryTransport, name: str) -> None:
        self.transport = transport
        self.name = name
        self._next_id = 0

    async def initialize(self) -> Any:
        result = await self.request("initialize", {
            "protocolVersion": CLIENT_PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": self.name, "version": __version__},
        })
        await self.transport.send(Message.build({"jsonrpc": "2.0", "method": "notifications/initialized"},
                                                Direction.CLIENT_TO_SERVER))
        return result

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Send a request and wait for its answer; server requests meanwhile get a polite refusal."""
        self._next_id += 1
        id_ = self._next_id
        await self.transport.send(Message.build({"jsonrpc": "2.0", "id": id_, "method": method, "params": params},
                                                Direction.CLIENT_TO_SERVER))
        while True:
            try:
                msg = await self.transport.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise CallFailed(f"the session ended before {method} was answered") from None
            if not isinstance(msg, Message):
                continue
            if msg.kind is Kind.REQUEST:
                await self.transport.send(_answer_server_request(msg))
                continue
            if msg.kind in (Kind.RESPONSE, Kind.ERROR) and msg.obj.get("id") == id_:
                if msg.kind is Kind.ERROR:
                    err = msg.obj.get("error") or {}
                    raise CallFailed(f"{method} failed: {err.get('message', 'error')} (code {err.get('code')})")
                return msg.obj.get("result")

    async def input_schema(self, tool: str) -> Any:
        cursor: Any = None
        for _ in range(100):
            page = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            for entry in (page or {}).get("tools", []):
                if isinstance(entry, dict) and entry.get("name") == tool:
                    return entry.get("inputSchema")
            cursor = (page or {}).get("nextCursor")
            if not cursor:
                break
        raise CallFailed(f"the server has no tool named '{tool}'")


@dataclass
class ToolCall:
    """The script of `relay call`: initialize, (tools/list to type --arg values), tools/call."""

    spec: CallSpec
    result: dict[str, Any] | None = None
    error: CallFailed | None = None

    async def script(self, transport: MemoryTransport) -> None:
        try:
            client = ScriptedClient(transport, "relay-call")
            await client.initialize()
            arguments = dict(self.spec.arguments)
            if self.spec.untyped:
                schema = await client.input_schema(self.spec.tool)
                props = schema.get("properties", {}) if isinstance(schema, dict) else {}
                for key, value in self.spec.untyped.items():
                    arguments[key] = coerce(value, props.get(key))
            result = await client.request("tools/call", {"name": self.spec.tool, "arguments": arguments})
            if not isinstance(result, dict):
                raise CallFailed("tools/call returned no result object")
            self.result = result
        except CallFailed as exc:
            self.error = exc


def _answer_server_request(msg: Message) -> Message:
    """A one-shot caller has no human or model to offer: answer what it can, refuse the rest."""
    method, id_ = msg.method, msg.obj.get("id")
    if method == "ping":
        obj: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "result": {}}
    elif method == "roots/list":
        obj = {"jsonrpc": "2.0", "id": id_, "result": {"roots": []}}
    else:
        obj = error_obj(id_, METHOD_NOT_FOUND, f"relay call cannot answer {method}")
    return Message.build(obj, Direction.CLIENT_TO_SERVER)


def render_result(result: dict[str, Any]) -> bytes:
    return (dumps(result) + "\n").encode("utf-8")


def tool_error(tool: str, result: dict[str, Any]) -> CallFailed:
    texts = [c.get("text", "") for c in result.get("content", []) if isinstance(c, dict) and c.get("type") == "text"]
    detail = "; ".join(t for t in texts if t)[:500] or "no detail"
    return CallFailed(f"tool {tool} reported an error: {detail}")
