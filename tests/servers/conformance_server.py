"""MCP server for the MCP conformance suite's server scenarios, built on the official `mcp` SDK 2.x.

It exposes the fixtures the scenarios look for (tools such as ``test_simple_text``,
resources such as ``test://static-text``, prompts such as ``test_simple_prompt``) and
serves Streamable HTTP at ``http://127.0.0.1:PORT/mcp``. Both protocol eras are served:
the initialize-handshake revisions up to 2025-11-25 (sampling and elicitation as
server-to-client requests) and the stateless 2026-07-28 revision (sampling, elicitation
and roots as ``InputRequiredResult`` rounds).

Run it directly::

    python tests/servers/conformance_server.py --port 3001

Host/Origin validation (DNS-rebinding protection) is on, allowing only loopback names,
as the SDK sets it up for a server bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import re
import struct
import warnings
import wave
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types
import uvicorn
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from starlette.applications import Starlette

logger = logging.getLogger("conformance_server")

SERVER_NAME = "relay-conformance-server"
Ctx = ServerRequestContext[Any, Any]
ToolHandler = Callable[
    [Ctx, types.CallToolRequestParams], Awaitable[types.CallToolResult | types.InputRequiredResult]
]


# --------------------------------------------------------------------------- media fixtures


def _png_1x1_red() -> bytes:
    """A valid 1x1 red RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav_silence() -> bytes:
    """A valid 10 ms mono 8 kHz 16-bit silent WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


PNG_BYTES = _png_1x1_red()
PNG_B64 = base64.b64encode(PNG_BYTES).decode()
WAV_B64 = base64.b64encode(_wav_silence()).decode()


# --------------------------------------------------------------------------- event store


class InMemoryEventStore(EventStore):
    """Keeps every SSE event so a client reconnecting with Last-Event-ID gets the rest of its stream."""

    def __init__(self) -> None:
        self._events: list[tuple[StreamId, EventId, types.JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        event_id = str(len(self._events) + 1)
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        if not last_event_id.isdigit() or not 0 < int(last_event_id) <= len(self._events):
            return None
        stream_id = self._events[int(last_event_id) - 1][0]
        for sid, event_id, message in self._events[int(last_event_id) :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


# --------------------------------------------------------------------------- helpers


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)])


def _elicit_request(message: str, properties: dict[str, Any], required: Sequence[str]) -> types.ElicitRequest:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def _sampling_request(prompt: str, max_tokens: int) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=types.TextContent(text=prompt))
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


def _input_required(
    requests: dict[str, types.InputRequest], state: str | None = None
) -> types.InputRequiredResult:
    return types.InputRequiredResult(input_requests=requests, request_state=state)


def _accepted(responses: types.InputResponses | None, key: str) -> dict[str, Any] | None:
    """The content of an accepted elicitation answer under `key`, or None if it is missing."""
    answer = (responses or {}).get(key)
    if isinstance(answer, types.ElicitResult) and answer.action == "accept":
        return dict(answer.content or {})
    return None


def _sampled_text(responses: types.InputResponses | None, key: str) -> str | None:
    answer = (responses or {}).get(key)
    if isinstance(answer, types.CreateMessageResult) and isinstance(answer.content, types.TextContent):
        return answer.content.text
    return None


def _client_declares(ctx: Ctx, capability: Literal["sampling", "elicitation", "roots"]) -> bool:
    declared = ctx.session.client_capabilities
    return declared is not None and getattr(declared, capability) is not None


# --------------------------------------------------------------------------- tools: content


async def test_simple_text(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _text("This is a simple text response for testing.")


async def test_image_content(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.ImageContent(data=PNG_B64, mime_type="image/png")])


async def test_audio_content(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.AudioContent(data=WAV_B64, mime_type="audio/wav")])


async def test_embedded_resource(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    resource = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return types.CallToolResult(content=[types.EmbeddedResource(resource=resource)])


async def test_multiple_content_types(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    resource = types.TextResourceContents(
        uri="test://mixed-content-resource",
        mime_type="application/json",
        text=json.dumps({"test": "data", "value": 123}),
    )
    return types.CallToolResult(
        content=[
            types.TextContent(text="Multiple content types test:"),
            types.ImageContent(data=PNG_B64, mime_type="image/png"),
            types.EmbeddedResource(resource=resource),
        ]
    )


async def test_error_handling(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text="This tool intentionally returns an error for testing")],
        is_error=True,
    )


async def json_schema_2020_12_tool(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _text(f"Received: {json.dumps(params.arguments or {}, sort_keys=True)}")


async def test_header_param(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _text(f"region={(params.arguments or {}).get('region')}")


# --------------------------------------------------------------------------- tools: notifications


async def test_tool_with_logging(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    for i, message in enumerate(
        ("Tool execution started", "Tool processing data", "Tool execution completed")
    ):
        if i:
            await asyncio.sleep(0.05)
        await ctx.session.send_log_message(level="info", data=message, related_request_id=ctx.request_id)
    return _text("Tool with logging executed successfully")


async def test_tool_with_progress(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    for i, progress in enumerate((0, 50, 100)):
        if i:
            await asyncio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"Completed step {progress} of 100")
    return _text("Tool with progress executed successfully")


async def test_reconnection(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    """Closes its SSE stream mid-call; the result reaches the client after it reconnects (SEP-1699)."""
    await ctx.session.send_log_message(
        level="info", data="Before disconnect", related_request_id=ctx.request_id
    )
    if ctx.close_sse_stream is not None:
        await ctx.close_sse_stream()
    await asyncio.sleep(0.2)
    return _text("Reconnection test completed")


# --------------------------------------------------------------------------- tools: handshake-era client requests


async def test_sampling(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    prompt = str((params.arguments or {}).get("prompt", ""))
    request = _sampling_request(prompt, 100)
    result = await ctx.session.create_message(
        messages=request.params.messages, max_tokens=100, related_request_id=ctx.request_id
    )
    text = result.content.text if isinstance(result.content, types.TextContent) else "(non-text response)"
    return _text(f"LLM response: {text}")


async def _elicit(ctx: Ctx, message: str, schema: dict[str, Any]) -> types.ElicitResult:
    return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)


async def test_elicitation(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    message = str((params.arguments or {}).get("message", "Please provide your information"))
    schema = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    }
    result = await _elicit(ctx, message, schema)
    return _text(f"User response: action={result.action}, content={json.dumps(result.content or {})}")


async def test_elicitation_sep1034_defaults(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
        "required": [],
    }
    result = await _elicit(ctx, "Please review and update the form fields with defaults", schema)
    return _text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content or {})}")


async def test_elicitation_sep1330_enums(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult:
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
        "required": [],
    }
    result = await _elicit(ctx, "Please select values using the different enum schema types", schema)
    return _text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content or {})}")


# --------------------------------------------------------------------------- tools: 2026-07-28 input-required rounds

_NAME_QUESTION = ("What is your name?", {"name": {"type": "string"}}, ["name"])


def _ask_name() -> types.ElicitRequest:
    return _elicit_request(*_NAME_QUESTION)


async def test_input_required_result_elicitation(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    answer = _accepted(params.input_responses, "user_name")
    if answer is None or not isinstance(answer.get("name"), str):
        return _input_required({"user_name": _ask_name()})
    return _text(f"Hello, {answer['name']}!")


async def test_input_required_result_sampling(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    text = _sampled_text(params.input_responses, "capital_question")
    if text is None:
        return _input_required({"capital_question": _sampling_request("What is the capital of France?", 100)})
    return _text(f"Sampling response: {text}")


async def test_input_required_result_list_roots(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    answer = (params.input_responses or {}).get("client_roots")
    if not isinstance(answer, types.ListRootsResult):
        return _input_required({"client_roots": types.ListRootsRequest()})
    return _text("Client roots: " + ", ".join(str(root.uri) for root in answer.roots))


async def test_input_required_result_request_state(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    answer = _accepted(params.input_responses, "confirm")
    if answer is None or params.request_state != "awaiting-confirmation":
        confirm = _elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
        return _input_required({"confirm": confirm}, state="awaiting-confirmation")
    return _text(f"state-ok: confirmed={answer.get('ok')}")


async def test_input_required_result_multiple_inputs(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    responses = params.input_responses or {}
    name = _accepted(responses, "user_name")
    greeting = _sampled_text(responses, "greeting")
    roots = responses.get("client_roots")
    if name is None or greeting is None or not isinstance(roots, types.ListRootsResult):
        requests: dict[str, types.InputRequest] = {
            "user_name": _ask_name(),
            "greeting": _sampling_request("Generate a greeting", 50),
            "client_roots": types.ListRootsRequest(),
        }
        return _input_required(requests, state="multiple-inputs")
    return _text(f"{greeting} {name.get('name')} ({len(roots.roots)} roots)")


async def test_input_required_result_multi_round(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    state = params.request_state or ""
    if state.startswith("round-2:"):
        color = _accepted(params.input_responses, "step2")
        if color is not None:
            return _text(
                f"Hello {state.removeprefix('round-2:')}, your favorite color is {color.get('color')}."
            )
    name = _accepted(params.input_responses, "step1")
    if state == "round-1" and name is not None:
        step2 = _elicit_request(
            "Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"]
        )
        return _input_required({"step2": step2}, state=f"round-2:{name.get('name')}")
    step1 = _elicit_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
    return _input_required({"step1": step1}, state="round-1")


async def test_input_required_result_tampered_state(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    # The SDK's RequestStateBoundary seals request_state and rejects a tampered one with -32602.
    answer = _accepted(params.input_responses, "confirm")
    if answer is None or params.request_state != "integrity-protected":
        confirm = _elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
        return _input_required({"confirm": confirm}, state="integrity-protected")
    return _text("state-ok")


async def test_input_required_result_capabilities(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    requests: dict[str, types.InputRequest] = {}
    if _client_declares(ctx, "sampling") and _sampled_text(params.input_responses, "summary") is None:
        requests["summary"] = _sampling_request("Summarize the capabilities test", 50)
    if _client_declares(ctx, "elicitation") and _accepted(params.input_responses, "user_name") is None:
        requests["user_name"] = _ask_name()
    if requests:
        return _input_required(requests)
    return _text("Capabilities test completed")


async def test_missing_capability(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    """Needs the client's sampling capability; without it, fails with -32021 (SEP-2575)."""
    if not _client_declares(ctx, "sampling"):
        data = types.MissingRequiredClientCapabilityErrorData(
            required_capabilities=types.ClientCapabilities(sampling=types.SamplingCapability())
        )
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="This tool requires the client's sampling capability",
            data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
        )
    return _text("Client declared sampling")


# --------------------------------------------------------------------------- tool table

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolSpec:
    handler: ToolHandler
    description: str
    input_schema: dict[str, Any] = field(default_factory=lambda: dict(EMPTY_SCHEMA))


def _string_args(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {n: {"type": "string"} for n in names}, "required": list(names)}


JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

HEADER_PARAM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "region": {
            "type": "string",
            "description": "Mirrored into Mcp-Param-Region",
            "x-mcp-header": "Region",
        }
    },
    "required": ["region"],
}

TOOLS: dict[str, ToolSpec] = {
    "test_simple_text": ToolSpec(test_simple_text, "Returns simple text content"),
    "test_image_content": ToolSpec(test_image_content, "Returns a 1x1 PNG image"),
    "test_audio_content": ToolSpec(test_audio_content, "Returns a short WAV clip"),
    "test_embedded_resource": ToolSpec(test_embedded_resource, "Returns an embedded text resource"),
    "test_multiple_content_types": ToolSpec(
        test_multiple_content_types, "Returns text, image and resource content"
    ),
    "test_error_handling": ToolSpec(test_error_handling, "Always returns a tool error (isError: true)"),
    "test_tool_with_logging": ToolSpec(test_tool_with_logging, "Sends three info log notifications"),
    "test_tool_with_progress": ToolSpec(test_tool_with_progress, "Reports progress 0, 50 and 100 of 100"),
    "test_reconnection": ToolSpec(test_reconnection, "Closes its SSE stream mid-call (SEP-1699)"),
    "test_sampling": ToolSpec(test_sampling, "Asks the client for an LLM completion", _string_args("prompt")),
    "test_elicitation": ToolSpec(test_elicitation, "Asks the user for input", _string_args("message")),
    "test_elicitation_sep1034_defaults": ToolSpec(
        test_elicitation_sep1034_defaults, "Elicitation with defaults for every primitive type (SEP-1034)"
    ),
    "test_elicitation_sep1330_enums": ToolSpec(
        test_elicitation_sep1330_enums, "Elicitation with every enum schema variant (SEP-1330)"
    ),
    "json_schema_2020_12_tool": ToolSpec(
        json_schema_2020_12_tool, "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12
    ),
    "test_input_required_result_elicitation": ToolSpec(
        test_input_required_result_elicitation, "Asks for the user's name via InputRequiredResult (SEP-2322)"
    ),
    "test_input_required_result_sampling": ToolSpec(
        test_input_required_result_sampling, "Asks for a sampling result via InputRequiredResult (SEP-2322)"
    ),
    "test_input_required_result_list_roots": ToolSpec(
        test_input_required_result_list_roots,
        "Asks for the client's roots via InputRequiredResult (SEP-2322)",
    ),
    "test_input_required_result_request_state": ToolSpec(
        test_input_required_result_request_state, "Round-trips requestState (SEP-2322)"
    ),
    "test_input_required_result_multiple_inputs": ToolSpec(
        test_input_required_result_multiple_inputs,
        "Asks for elicitation, sampling and roots at once (SEP-2322)",
    ),
    "test_input_required_result_multi_round": ToolSpec(
        test_input_required_result_multi_round, "Two input rounds with evolving requestState (SEP-2322)"
    ),
    "test_input_required_result_tampered_state": ToolSpec(
        test_input_required_result_tampered_state, "Rejects a tampered requestState (SEP-2322)"
    ),
    "test_input_required_result_capabilities": ToolSpec(
        test_input_required_result_capabilities, "Only asks for what the client declared (SEP-2322)"
    ),
    "test_missing_capability": ToolSpec(test_missing_capability, "Requires the client's sampling capability"),
    "test_streaming_elicitation": ToolSpec(
        test_input_required_result_elicitation, "Elicits via InputRequiredResult, never a standalone request"
    ),
    "test_logging_tool": ToolSpec(test_tool_with_logging, "Logs only at the level the request opted in to"),
    "test_header_param": ToolSpec(
        test_header_param, "Echoes a parameter mirrored into an HTTP header", HEADER_PARAM_SCHEMA
    ),
}


TRIGGER_TOOLS: dict[str, tuple[str, type[ToolsListChanged] | type[PromptsListChanged]]] = {
    # Publish a list-changed event to `subscriptions/listen` streams (2026-07-28, SEP-2575).
    "test_trigger_tool_change": ("Notifies listeners that the tool list changed", ToolsListChanged),
    "test_trigger_prompt_change": ("Notifies listeners that the prompt list changed", PromptsListChanged),
}


# --------------------------------------------------------------------------- resources

STATIC_RESOURCES: dict[str, tuple[str, str, str | bytes]] = {
    # uri: (description, mime type, content)
    "test://static-text": (
        "A static text resource",
        "text/plain",
        "This is the content of the static text resource.",
    ),
    "test://static-binary": ("A static binary resource (1x1 PNG)", "image/png", PNG_BYTES),
    "test://watched-resource": (
        "A resource clients can subscribe to",
        "text/plain",
        "Watched resource content",
    ),
}
TEMPLATE_URI = "test://template/{id}/data"
TEMPLATE_PATTERN = re.compile(r"test://template/(?P<id>[^/]+)/data")


def _read(uri: str) -> types.TextResourceContents | types.BlobResourceContents:
    if uri in STATIC_RESOURCES:
        _, mime_type, content = STATIC_RESOURCES[uri]
        if isinstance(content, bytes):
            return types.BlobResourceContents(
                uri=uri, mime_type=mime_type, blob=base64.b64encode(content).decode()
            )
        return types.TextResourceContents(uri=uri, mime_type=mime_type, text=content)
    match = TEMPLATE_PATTERN.fullmatch(uri)
    if match:
        item_id = match["id"]
        body = {"id": item_id, "templateTest": True, "data": f"Data for ID: {item_id}"}
        return types.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(body))
    raise MCPError(code=types.INVALID_PARAMS, message="Resource not found", data={"uri": uri})


# --------------------------------------------------------------------------- prompts


def _user(content: types.ContentBlock) -> types.PromptMessage:
    return types.PromptMessage(role="user", content=content)


def _prompt_messages(name: str, args: dict[str, str]) -> list[types.PromptMessage]:
    if name == "test_simple_prompt":
        return [_user(types.TextContent(text="This is a simple prompt for testing."))]
    if name == "test_prompt_with_arguments":
        text = f"Prompt with arguments: arg1='{args.get('arg1', '')}', arg2='{args.get('arg2', '')}'"
        return [_user(types.TextContent(text=text))]
    if name == "test_prompt_with_embedded_resource":
        resource = types.TextResourceContents(
            uri=args.get("resourceUri", "test://example-resource"),
            mime_type="text/plain",
            text="Embedded resource content for testing.",
        )
        return [
            _user(types.EmbeddedResource(resource=resource)),
            _user(types.TextContent(text="Please process the embedded resource above.")),
        ]
    if name == "test_prompt_with_image":
        return [
            _user(types.ImageContent(data=PNG_B64, mime_type="image/png")),
            _user(types.TextContent(text="Please analyze the image above.")),
        ]
    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name}")


def _argument(name: str, description: str) -> types.PromptArgument:
    return types.PromptArgument(name=name, description=description, required=True)


PROMPTS: list[types.Prompt] = [
    types.Prompt(name="test_simple_prompt", description="A simple prompt without arguments"),
    types.Prompt(
        name="test_prompt_with_arguments",
        description="A prompt with two required arguments",
        arguments=[_argument("arg1", "First test argument"), _argument("arg2", "Second test argument")],
    ),
    types.Prompt(
        name="test_prompt_with_embedded_resource",
        description="A prompt that embeds a resource",
        arguments=[_argument("resourceUri", "URI of the resource to embed")],
    ),
    types.Prompt(name="test_prompt_with_image", description="A prompt that includes an image"),
    types.Prompt(
        name="test_input_required_result_prompt",
        description="A prompt that first asks the user for context (SEP-2322)",
    ),
]


# --------------------------------------------------------------------------- server


@dataclass
class ConformanceState:
    """Mutable state shared by the handlers of one server process."""

    subscriptions: set[str] = field(default_factory=set)
    bus: InMemorySubscriptionBus = field(default_factory=InMemorySubscriptionBus)


def build_server(state: ConformanceState | None = None) -> Server[Any]:
    """The low-level SDK server with every conformance fixture registered."""
    state = state or ConformanceState()

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools = [
            types.Tool(name=name, description=spec.description, input_schema=spec.input_schema)
            for name, spec in TOOLS.items()
        ]
        tools += [
            types.Tool(name=name, description=description, input_schema=dict(EMPTY_SCHEMA))
            for name, (description, _) in TRIGGER_TOOLS.items()
        ]
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        if params.name in TRIGGER_TOOLS:
            event = TRIGGER_TOOLS[params.name][1]
            await state.bus.publish(event())
            return _text(f"Published {event.__name__}")
        spec = TOOLS.get(params.name)
        if spec is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        return await spec.handler(ctx, params)

    async def list_resources(
        ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(uri=uri, name=uri.removeprefix("test://"), description=desc, mime_type=mime)
                for uri, (desc, mime, _) in STATIC_RESOURCES.items()
            ]
        )

    async def list_templates(
        ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template=TEMPLATE_URI,
            name="template",
            description="A resource template with parameter substitution",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read_resource(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return types.ReadResourceResult(contents=[_read(params.uri)])

    async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        state.subscriptions.add(params.uri)
        return types.EmptyResult()

    async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        state.subscriptions.discard(params.uri)
        return types.EmptyResult()

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=PROMPTS)

    async def get_prompt(
        ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        if params.name == "test_input_required_result_prompt":
            answer = _accepted(params.input_responses, "user_context")
            if answer is None:
                question = _elicit_request(
                    "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                )
                return _input_required({"user_context": question})
            text = f"Prompt using context: {answer.get('context')}"
            return types.GetPromptResult(messages=[_user(types.TextContent(text=text))])
        messages = _prompt_messages(params.name, params.arguments or {})
        return types.GetPromptResult(description=f"Conformance prompt {params.name}", messages=messages)

    async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        return types.CompleteResult(completion=types.Completion(values=[], total=0, has_more=False))

    async def set_logging_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        logger.info("client set log level to %s", params.level)
        return types.EmptyResult()

    hint = CacheHint(ttl_ms=0, scope="private")
    server: Server[Any] = Server(
        SERVER_NAME,
        version="1.0.0",
        get_tool_input_schema=lambda name: TOOLS[name].input_schema if name in TOOLS else None,
        cache_hints={
            method: hint
            for method in (
                "tools/list",
                "prompts/list",
                "resources/list",
                "resources/templates/list",
                "resources/read",
            )
        },
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
        on_subscriptions_listen=ListenHandler(state.bus),
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
    )
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_logging_level)
    server.middleware.append(
        RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=SERVER_NAME)
    )
    return server


def build_app(host: str = "127.0.0.1") -> Starlette:
    """The Starlette app serving the conformance server at /mcp, with resumable SSE streams."""
    return build_server().streamable_http_app(
        streamable_http_path="/mcp",
        event_store=InMemoryEventStore(),
        retry_interval=100,
        host=host,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=3001, help="TCP port to listen on (default: 3001)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    args = parser.parse_args(argv)
    # Logging and sampling are deprecated in 2026-07-28 but still tested for the older revisions.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    logging.basicConfig(level=args.log_level.upper())
    uvicorn.run(build_app(args.host), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
