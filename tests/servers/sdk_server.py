"""Deterministic MCP test server built with the official ``mcp`` SDK (2.x).

Usage::

    python tests/servers/sdk_server.py --transport stdio
    python tests/servers/sdk_server.py --transport streamable-http [--port N] [--json-response] [--stateless]
                                       [--resumable [--retry-ms MS]]
    python tests/servers/sdk_server.py --transport sse [--port N]

HTTP transports bind ``--host`` (default 127.0.0.1). ``--port 0`` (the default)
picks a free port. Once the server accepts connections, one line is written to
stderr (and flushed)::

    READY http://127.0.0.1:PORT/mcp      (streamable-http)
    READY http://127.0.0.1:PORT/sse      (sse; POST endpoint is announced by the
                                          ``endpoint`` event: /messages/?session_id=...)

stdio writes nothing but protocol to stdout; SDK and uvicorn logging go to
stderr at WARNING and above.

Both protocol eras are served on every transport (the SDK routes per request /
per connection): the ``initialize`` handshake (2024-11-05 .. 2025-11-25) and the
2026-07-28 per-request envelope (``server/discover``, ``_meta`` on every
request, no session). ``--stateless`` only affects the handshake era on
streamable HTTP (no ``Mcp-Session-Id``, no GET stream, no server->client
requests); 2026-07-28 requests are always handled statelessly by the SDK.
``--json-response`` answers POSTs with ``application/json`` instead of an SSE
stream: progress/log notifications sent while a request runs are then dropped,
and handshake-era server->client requests (sample/elicit) go out on the
session's GET SSE stream instead of the POST's stream. ``--resumable`` installs
an in-memory event store so SSE events carry ``id:`` fields, a priming event
(plus ``retry:`` when ``--retry-ms`` is given) is sent for clients at
>= 2025-11-25, and a client may resume with ``Last-Event-ID``.

Tools (all deterministic):

``echo(text)``
    Returns ``text``.
``add(a: int, b: int)``
    Returns ``a + b`` as text and as ``structuredContent`` ``{"result": a+b}``
    (the only tool with an ``outputSchema``; all others return one text block).
``progress(steps: int)``
    Sends ``steps`` ``notifications/progress`` (progress=1..steps, total=steps,
    message="step i/steps") when the request carried ``_meta.progressToken``,
    then returns ``"done"``.
``log(message, level="info")``
    Sends one ``notifications/message`` (``logger="sdk_server"``,
    ``data=message``) then returns ``"logged"``. At 2026-07-28 the SDK only
    sends it when the request's ``_meta`` opts in with
    ``io.modelcontextprotocol/logLevel`` (the SDK ``Client(log_level=...)``).
``sample(prompt)``
    Asks the client to sample (``sampling/createMessage``, one user text
    message ``prompt``, ``maxTokens=100``) and returns the text of the reply.
    Handshake era: a server->client JSON-RPC request sent mid-call (stdio/SSE:
    on the connection; streamable HTTP: on the POST's SSE stream, or the GET
    stream with ``--json-response``; ``--stateless`` has no back-channel, so
    the call fails with JSON-RPC error -32600). 2026-07-28: the first call
    returns an ``InputRequiredResult``
    ``{"resultType": "input_required", "inputRequests": {"sample": {"method":
    "sampling/createMessage", "params": {...}}}}`` (no ``requestState``); the
    client retries the ``tools/call`` (new JSON-RPC id) with
    ``params.inputResponses = {"sample": <CreateMessageResult>}``. A 2026-07-28
    request whose ``_meta`` clientCapabilities lack ``sampling`` gets error
    -32021 (HTTP 400) with ``data.requiredCapabilities = {"sampling": {}}``.
``elicit(question)``
    Form elicitation (``elicitation/create``, message=question, schema with one
    required string property ``answer``). Returns the answer when accepted,
    otherwise the action (``"decline"``/``"cancel"``). Same era split as
    ``sample`` with input key ``"elicit"`` (capability ``elicitation``).
``big(kb: int)``
    Returns exactly ``kb * 1024`` ASCII characters: 64-char lines
    ``"%07d " % line_no`` + 55 letters/digits + ``"\\n"``.
``slow(seconds: float)``
    Sleeps, then returns ``"slept"`` (cancellable).
``crash()``
    ``os._exit(3)`` in the middle of the call: no response is ever sent and the
    whole server process dies (for HTTP too).
``fail()``
    Raises ``ToolError`` -> result with ``isError: true`` and text
    ``"Error executing tool fail: intentional failure"``.
``interrupt(seconds: float = 0.5)``
    Streamable HTTP with ``--resumable`` only: sends one progress notification,
    closes the request's SSE stream (the client must reconnect with GET +
    ``Last-Event-ID``), sleeps, returns ``"resumed"``. Elsewhere it just sleeps
    and returns ``"resumed"``.

Resource: ``test://static`` (text/plain, ``"static resource content"``).
Prompt: ``greet(name)`` -> one user message ``"Hello, {name}!"``.

At 2026-07-28 every result also carries
``_meta["io.modelcontextprotocol/serverInfo"] = {"name": "relay-test-sdk-server",
"version": "1.0.0"}`` and ``resultType``; list results carry ``ttlMs``/``cacheScope``.
"""

from __future__ import annotations

import argparse
import os
import socket
import string
import sys
import warnings
from collections import deque
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

# Sampling, logging and roots are deprecated at 2026-07-28 (SEP-2577) but still
# supported; this server exercises them on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

SERVER_NAME = "relay-test-sdk-server"
SERVER_VERSION = "1.0.0"

mcp = MCPServer(SERVER_NAME, version=SERVER_VERSION, log_level="WARNING")


def _is_modern(ctx: Context) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _require_capability(capability: types.ClientCapabilities, declared: bool) -> None:
    """2026-07-28: a server MUST NOT send input requests the client did not declare (-32021, HTTP 400)."""
    if not declared:
        data = types.MissingRequiredClientCapabilityErrorData(required_capabilities=capability)
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="Missing required client capability",
            data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
        )


def _back_channel(ctx: Context) -> types.RequestId | None:
    """Where a handshake-era server->client request goes.

    The originating request's own stream when it can carry one (stdio, SSE,
    streamable HTTP in SSE mode); otherwise (``--json-response``) the session's
    standalone channel, i.e. the GET SSE stream. Stateless HTTP has neither, so
    the call fails with a JSON-RPC error (-32600, no back-channel).
    """
    return ctx.request_context.request_id if ctx.session.can_send_request else None


@mcp.tool(structured_output=False)
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool(structured_output=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool(structured_output=False)
async def progress(steps: int, ctx: Context) -> str:
    """Send `steps` progress notifications, then return "done"."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}/{steps}")
    return "done"


@mcp.tool(structured_output=False)
async def log(message: str, ctx: Context, level: types.LoggingLevel = "info") -> str:
    """Send one notifications/message log entry, then return "logged"."""
    await ctx.log(level, message, logger_name="sdk_server")
    return "logged"


_ELICIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "description": "Your answer"}},
    "required": ["answer"],
}


def _sampling_params(prompt: str) -> types.CreateMessageRequestParams:
    return types.CreateMessageRequestParams(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=100,
    )


def _sampled_text(result: types.CreateMessageResult | types.CreateMessageResultWithTools) -> str:
    blocks = result.content if isinstance(result.content, list) else [result.content]
    return "".join(block.text for block in blocks if isinstance(block, types.TextContent))


def _elicited_answer(result: types.ElicitResult) -> str:
    if result.action == "accept":
        return str((result.content or {}).get("answer", ""))
    return result.action


@mcp.tool(structured_output=False)
async def sample(prompt: str, ctx: Context) -> str | types.InputRequiredResult:
    """Ask the client's LLM (sampling/createMessage) and return its text."""
    params = _sampling_params(prompt)
    if _is_modern(ctx):
        caps = ctx.client_capabilities
        _require_capability(
            types.ClientCapabilities(sampling=types.SamplingCapability()), bool(caps and caps.sampling)
        )
        answer = (ctx.input_responses or {}).get("sample")
        if answer is None:
            return types.InputRequiredResult(
                input_requests={"sample": types.CreateMessageRequest(params=params)}
            )
        if not isinstance(answer, types.CreateMessageResult | types.CreateMessageResultWithTools):
            raise ToolError("inputResponses.sample is not a CreateMessageResult")
        return _sampled_text(answer)
    result = await ctx.session.create_message(
        params.messages, max_tokens=params.max_tokens, related_request_id=_back_channel(ctx)
    )
    return _sampled_text(result)


@mcp.tool(structured_output=False)
async def elicit(question: str, ctx: Context) -> str | types.InputRequiredResult:
    """Ask the user (elicitation/create, form mode) and return the answer or the action."""
    if _is_modern(ctx):
        caps = ctx.client_capabilities
        _require_capability(
            types.ClientCapabilities(elicitation=types.ElicitationCapability()),
            bool(caps and caps.elicitation),
        )
        answer = (ctx.input_responses or {}).get("elicit")
        if answer is None:
            request = types.ElicitRequest(
                params=types.ElicitRequestFormParams(message=question, requested_schema=_ELICIT_SCHEMA)
            )
            return types.InputRequiredResult(input_requests={"elicit": request})
        if not isinstance(answer, types.ElicitResult):
            raise ToolError("inputResponses.elicit is not an ElicitResult")
        return _elicited_answer(answer)
    result = await ctx.session.elicit_form(question, _ELICIT_SCHEMA, related_request_id=_back_channel(ctx))
    return _elicited_answer(result)


_BIG_ALPHABET = string.ascii_letters + string.digits  # 62 chars


def big_text(kb: int) -> str:
    """The exact text `big(kb)` returns (exposed for tests)."""
    total = max(kb, 0) * 1024
    lines = []
    for n in range(total // 64):
        body = "".join(_BIG_ALPHABET[(n + i) % len(_BIG_ALPHABET)] for i in range(55))
        lines.append(f"{n:07d} {body}\n")
    return "".join(lines)


@mcp.tool(structured_output=False)
def big(kb: int) -> str:
    """Return exactly kb*1024 characters of deterministic ASCII text."""
    return big_text(kb)


@mcp.tool(structured_output=False)
async def slow(seconds: float) -> str:
    """Sleep for `seconds`, then return "slept"."""
    await anyio.sleep(seconds)
    return "slept"


@mcp.tool(structured_output=False)
def crash() -> str:
    """Kill the server process mid-call (exit code 3)."""
    sys.stderr.flush()
    os._exit(3)


@mcp.tool(structured_output=False)
def fail() -> str:
    """Always fail: the result has isError=true."""
    raise ToolError("intentional failure")


@mcp.tool(structured_output=False)
async def interrupt(ctx: Context, seconds: float = 0.5) -> str:
    """Close this request's SSE stream (resumable streamable HTTP only), then finish after `seconds`."""
    await ctx.report_progress(1, 2, "before interrupt")
    await ctx.close_sse_stream()
    await anyio.sleep(seconds)
    await ctx.report_progress(2, 2, "after interrupt")
    return "resumed"


@mcp.resource("test://static", name="static", description="A static text resource", mime_type="text/plain")
def static_resource() -> str:
    return "static resource content"


@mcp.prompt()
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


class InMemoryEventStore(EventStore):
    """Minimal event store for `--resumable`: keeps the last `max_events` events."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: deque[tuple[EventId, StreamId, types.JSONRPCMessage | None]] = deque(maxlen=max_events)
        self._counter = 0

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        self._counter += 1
        event_id = f"{stream_id}:{self._counter}"
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        events = list(self._events)
        index = next((i for i, (eid, _, _) in enumerate(events) if eid == last_event_id), None)
        if index is None:
            return None
        stream_id = events[index][1]
        for event_id, sid, message in events[index + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


async def _serve_http(args: argparse.Namespace) -> None:
    import uvicorn

    if args.transport == "sse":
        app = mcp.sse_app(sse_path="/sse", message_path="/messages/", host=args.host)
        path = "/sse"
    else:
        app = mcp.streamable_http_app(
            streamable_http_path="/mcp",
            json_response=args.json_response,
            stateless_http=args.stateless,
            event_store=InMemoryEventStore() if args.resumable else None,
            retry_interval=args.retry_ms,
            host=args.host,
        )
        path = "/mcp"

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host

    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
            await anyio.sleep(0.01)
        print(f"READY http://{host}:{port}{path}", file=sys.stderr, flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port (see the READY line)")
    parser.add_argument("--json-response", action="store_true", help="streamable-http: JSON instead of SSE")
    parser.add_argument(
        "--stateless", action="store_true", help="streamable-http: no sessions (handshake era)"
    )
    parser.add_argument("--resumable", action="store_true", help="streamable-http: in-memory event store")
    parser.add_argument("--retry-ms", type=int, default=None, help="streamable-http: SSE retry field (ms)")
    args = parser.parse_args(argv)

    if args.transport == "stdio":
        anyio.run(mcp.run_stdio_async)
    else:
        anyio.run(_serve_http, args)


if __name__ == "__main__":
    main()
