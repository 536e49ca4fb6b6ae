"""Transparency against the reference server `@modelcontextprotocol/server-everything` (pinned in tests/node):
one scripted session, straight to the server and through `relay run`, must give identical answers over each
upstream transport (stdio, Streamable HTTP, legacy SSE), progress notifications and server requests included."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import Client, types
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support.node import (
    NodeCommand,
    everything_sse_command,
    everything_stdio_command,
    everything_streamable_http_command,
    wait_for_port,
)
from tests.support.processes import RELAY, RawClient, free_port, relay_env, stop

pytestmark = pytest.mark.node

# server-everything ends its dynamic resources' text with the wall-clock time (`new Date().toLocaleTimeString()`,
# whose format follows the locale), so two runs a second apart differ there and nowhere else: only that is blanked.
_CLOCK = re.compile(r"(created at ).+$")
# Over HTTP the server names the session in some log lines, and it mints a random UUID per session.
_SESSION = re.compile(r"session [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def without_clock(value: Any) -> Any:
    """`value` with the creation time in server-everything's dynamic resources blanked (text and base64 blobs)."""
    if isinstance(value, dict):
        out = {k: without_clock(v) for k, v in value.items()}
        if isinstance(out.get("blob"), str):
            decoded = base64.b64decode(out["blob"]).decode("utf-8", "replace")
            if _CLOCK.search(decoded):
                out["blob"] = _CLOCK.sub(r"\1<time>", decoded)
        return out
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    if isinstance(value, str):
        return _CLOCK.sub(r"\1<time>", value)
    return value


# --------------------------------------------------------------------------- stdio upstream, byte level

CLIENT_CAPABILITIES = {"roots": {"listChanged": True}, "sampling": {}, "elicitation": {}}
ROOTS = {"roots": [{"uri": "file:///tmp/relay-everything", "name": "relay tests"}]}
SAMPLED = {"role": "assistant", "content": {"type": "text", "text": "sampled: forty-two"},
           "model": "relay-test-model", "stopReason": "endTurn"}
ELICITED = {"action": "accept", "content": {"name": "Ada Lovelace", "check": True, "email": "ada@example.org",
                                            "integer": 7, "number": 2.5, "untitledSingleSelectEnum": "Joey"}}
CANNED = {"roots/list": ROOTS, "sampling/createMessage": SAMPLED, "elicitation/create": ELICITED}


@dataclass
class Transcript:
    """Every line the server side wrote, as bytes, filed by kind."""

    responses: dict[Any, bytes] = field(default_factory=dict)
    notifications: list[bytes] = field(default_factory=list)
    server_requests: list[bytes] = field(default_factory=list)
    # Notifications that arrived while a request was outstanding, by that request's id (progress lives here).
    during: dict[Any, list[bytes]] = field(default_factory=dict)
    lines: list[bytes] = field(default_factory=list)


class Driver:
    """Plays the MCP client over a RawClient: one request at a time, server requests answered from CANNED."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.seen = Transcript()

    def _take(self, waiting_for: Any = None) -> Any:
        raw = self.client.recv_raw(timeout=30)
        self.seen.lines.append(raw)
        msg = json.loads(raw)
        if "method" in msg and "id" in msg:
            self.seen.server_requests.append(raw)
            answer = CANNED.get(msg["method"])
            if answer is None:
                self.client.send({"jsonrpc": "2.0", "id": msg["id"],
                                  "error": {"code": -32601, "message": f"no canned answer for {msg['method']}"}})
            else:
                self.client.send({"jsonrpc": "2.0", "id": msg["id"], "result": answer})
        elif "method" in msg:
            self.seen.notifications.append(raw)
            if waiting_for is not None:
                self.seen.during.setdefault(waiting_for, []).append(raw)
        else:
            self.seen.responses[msg.get("id")] = raw
        return msg

    def request(self, id_: Any, method: str, params: Any = None) -> Any:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            msg["params"] = params
        self.client.send(msg)
        while True:
            got = self._take(waiting_for=id_)
            if "method" not in got and got.get("id") == id_:
                return got

    def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.client.send(msg)

    def until(self, predicate: Any) -> Any:
        """Read (answering server requests) until a message satisfies `predicate`."""
        while True:
            got = self._take()
            if predicate(got):
                return got


def call(name: str, arguments: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
    if meta:
        params["_meta"] = meta
    return params


def scripted_stdio(driver: Driver) -> None:
    """A session that touches every deterministic feature server-everything offers."""
    driver.request(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": CLIENT_CAPABILITIES,
                                     "clientInfo": {"name": "relay-tests", "version": "1"}})
    driver.notify("notifications/initialized")
    # The server asks for roots 350 ms after `initialized` and then logs what it got. Waiting for both
    # here (instead of sleeping) makes every later line's position depend only on our own requests.
    driver.until(lambda m: m.get("method") == "roots/list")
    driver.until(lambda m: m.get("method") == "notifications/message")
    driver.request(2, "tools/list")
    driver.request(3, "resources/list")
    driver.request(4, "resources/templates/list")
    driver.request(5, "prompts/list")
    driver.request(6, "ping")
    driver.request(7, "logging/setLevel", {"level": "debug"})
    # U+2028 and U+2029 are legal inside JSON strings and arrive unescaped: a line splitter must not split on them.
    # A lone surrogate arrives as the escape \ud800, which Python could parse but not re-encode as UTF-8.
    driver.request(8, "tools/call", call("echo", {"message": "héllo ✓ \u2028 \u2029 \"quoted\" \\ 💳 \ud800"}))
    driver.request("sum-1", "tools/call", call("get-sum", {"a": 2, "b": 40.5}))
    driver.request(9, "tools/call", call("get-sum", {"a": "two", "b": 40}))  # invalid arguments
    driver.request(10, "tools/call", call("no-such-tool"))
    driver.request(11, "tools/call", call("get-structured-content", {"location": "Chicago"}))
    driver.request(12, "tools/call", call("get-annotated-message", {"messageType": "error", "includeImage": True}))
    driver.request(13, "tools/call", call("get-tiny-image"))
    driver.request(14, "tools/call", call("get-resource-links", {"count": 4}))
    driver.request(15, "tools/call", call("get-resource-reference", {"resourceType": "Text", "resourceId": 3}))
    driver.request(16, "tools/call", call("get-roots-list"))
    # The server echoes maxTokens as a JSON number in its sampling request: JavaScript writes 1e-7 where Python
    # would write 1e-07, so a relay that re-serialised instead of forwarding bytes would show here.
    driver.request(17, "tools/call", call("trigger-sampling-request", {"prompt": "meaning of life?",
                                                                       "maxTokens": 1e-7}))
    driver.request(18, "tools/call", call("trigger-elicitation-request"))
    # Progress: a string token and a number token; the notifications must come through in order, unchanged.
    driver.request(19, "tools/call", call("trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                                          progressToken="tök-1"))
    driver.request(20, "tools/call", call("trigger-long-running-operation", {"duration": 0.2, "steps": 2},
                                          progressToken=7))
    payload = "data:text/plain;base64," + base64.b64encode(b"relay was here\n" * 20).decode()
    driver.request(21, "tools/call", call("gzip-file-as-resource",
                                          {"name": "relay.txt.gz", "data": payload, "outputType": "resourceLink"}))
    driver.request(22, "resources/read", {"uri": "demo://resource/session/relay.txt.gz"})
    driver.request(23, "resources/read", {"uri": "demo://resource/static/document/features.md"})
    driver.request(24, "resources/read", {"uri": "demo://resource/dynamic/text/5"})
    driver.request(25, "resources/read", {"uri": "demo://resource/dynamic/blob/6"})
    driver.request(26, "resources/read", {"uri": "demo://resource/dynamic/text/0"})  # an error
    driver.request(27, "resources/subscribe", {"uri": "demo://resource/static/document/features.md"})
    driver.request(28, "resources/unsubscribe", {"uri": "demo://resource/static/document/features.md"})
    driver.request(29, "prompts/get", {"name": "simple-prompt"})
    driver.request(30, "prompts/get", {"name": "args-prompt", "arguments": {"city": "Zürich", "state": "ZH"}})
    driver.request(31, "prompts/get", {"name": "completable-prompt",
                                       "arguments": {"department": "Sales", "name": "Eve"}})
    driver.request(32, "prompts/get", {"name": "resource-prompt", "arguments": {"resourceType": "Blob",
                                                                                "resourceId": "2"}})
    driver.request(33, "completion/complete", {"ref": {"type": "ref/prompt", "name": "completable-prompt"},
                                               "argument": {"name": "department", "value": "S"}})
    driver.request(34, "completion/complete", {"ref": {"type": "ref/prompt", "name": "completable-prompt"},
                                               "argument": {"name": "name", "value": ""},
                                               "context": {"arguments": {"department": "Engineering"}}})
    driver.request(35, "completion/complete", {"ref": {"type": "ref/resource",
                                                       "uri": "demo://resource/dynamic/text/{resourceId}"},
                                               "argument": {"name": "resourceId", "value": "12"}})
    driver.request(36, "tasks/list")
    driver.request(37, "tools/call", call("simulate-research-query", {"topic": "relays"}))  # needs a task
    driver.request(38, "no/such/method")


def _stdio_session(argv: list[str], env: dict[str, str]) -> tuple[Transcript, int, str]:
    with RawClient(argv, env=env) as client:
        driver = Driver(client)
        scripted_stdio(driver)
        code = client.close()
        return driver.seen, code, client.stderr


def _normalised(raw: bytes) -> Any:
    return without_clock(json.loads(raw))


def test_stdio_upstream_is_transparent_byte_for_byte(tmp_path: Path) -> None:
    server = everything_stdio_command()
    env = relay_env(tmp_path, **server.env)
    straight, straight_code, _ = _stdio_session(server.argv, env)
    relayed, relayed_code, relay_stderr = _stdio_session([*RELAY, "run", "--", *server.argv], env)

    # What the script relies on actually happened, straight to the server.
    tools = {t["name"] for t in json.loads(straight.responses[2])["result"]["tools"]}
    assert {"echo", "get-sum", "trigger-long-running-operation", "trigger-sampling-request",
            "trigger-elicitation-request", "get-roots-list", "gzip-file-as-resource"} <= tools
    progress = [json.loads(n)["params"] for n in straight.during[19]]
    assert progress == [{"progress": i, "total": 3, "progressToken": "tök-1"} for i in (1, 2, 3)]
    assert [json.loads(r)["method"] for r in straight.server_requests] == [
        "roots/list", "sampling/createMessage", "elicitation/create"]
    echo = json.loads(straight.responses[8])["result"]["content"][0]["text"]
    assert echo == "Echo: héllo ✓ \u2028 \u2029 \"quoted\" \\ 💳 \ud800"
    assert b'"maxTokens":1e-7,' in straight.server_requests[1]

    # Every response, byte for byte, under the id the client gave it.
    assert straight.responses.keys() == relayed.responses.keys()
    clocked = {15, 24, 25, 32}  # dynamic resources: compared with the creation time blanked
    for id_, raw in straight.responses.items():
        if id_ in clocked:
            assert _normalised(relayed.responses[id_]) == _normalised(raw), id_
        else:
            assert relayed.responses[id_] == raw, id_
    # Server-to-client requests (ids chosen by the server), progress and other notifications, unchanged and in order.
    assert relayed.server_requests == straight.server_requests
    assert relayed.notifications == straight.notifications
    assert relayed.during == straight.during
    assert [_normalised(x) for x in relayed.lines] == [_normalised(x) for x in straight.lines]

    assert (straight_code, relayed_code) == (0, 0)
    assert "Traceback" not in relay_stderr


# --------------------------------------------------------------------------- HTTP upstreams, SDK client


class Observer:
    """The SDK client's callbacks: what the server asked of the client, and the log lines it sent."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.asked.append(("sampling", params.model_dump(mode="json")))
        return types.CreateMessageResult.model_validate(SAMPLED)

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(("elicitation", params.model_dump(mode="json")))
        return types.ElicitResult.model_validate(ELICITED)

    async def roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append(("roots", None))
        return types.ListRootsResult.model_validate(ROOTS)

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.model_dump(mode="json"))
        self._changed.set()
        self._changed = anyio.Event()

    async def log_containing(self, text: str) -> None:
        """Wait for a log line containing `text`: over Streamable HTTP the server sends these on the GET stream,
        unordered with respect to the responses, so the script waits for each before going on."""
        while not any(text in str(entry.get("data")) for entry in self.logs):
            await self._changed.wait()


async def scripted_sdk(client: Client, seen: Observer) -> dict[str, Any]:
    """The stdio script's session, as an agent using the SDK would run it; returns what the client observed."""
    out: dict[str, Any] = {}
    out["server"] = (client.protocol_version, client.server_info.model_dump() if client.server_info else None,
                     client.server_capabilities.model_dump(), client.instructions)
    await seen.log_containing("Roots updated")
    out["tools"] = (await client.list_tools()).model_dump()
    out["resources"] = (await client.list_resources()).model_dump()
    out["templates"] = (await client.list_resource_templates()).model_dump()
    out["prompts"] = (await client.list_prompts()).model_dump()
    out["ping"] = (await client.send_ping()).model_dump()
    out["log_level"] = (await client.set_logging_level("debug")).model_dump()

    async def tool(key: str, name: str, arguments: dict[str, Any] | None = None) -> None:
        out[key] = without_clock((await client.call_tool(name, arguments or {})).model_dump())

    await tool("echo", "echo", {"message": "héllo ✓ \u2028 \u2029 \"quoted\" \\ 💳"})
    await tool("sum", "get-sum", {"a": 2, "b": 40.5})
    await tool("sum_invalid", "get-sum", {"a": "two", "b": 40})
    await tool("unknown_tool", "no-such-tool")
    await tool("structured", "get-structured-content", {"location": "Chicago"})
    await tool("annotated", "get-annotated-message", {"messageType": "error", "includeImage": True})
    await tool("image", "get-tiny-image")
    await tool("links", "get-resource-links", {"count": 4})
    await tool("reference", "get-resource-reference", {"resourceType": "Text", "resourceId": 3})
    await tool("roots", "get-roots-list")
    await tool("sampling", "trigger-sampling-request", {"prompt": "meaning of life?", "maxTokens": 9})
    await tool("elicitation", "trigger-elicitation-request")

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    long_run = await client.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                                      progress_callback=on_progress)
    out["long_run"] = long_run.model_dump()
    out["progress"] = progress

    payload = "data:text/plain;base64," + base64.b64encode(b"relay was here\n" * 20).decode()
    await tool("gzip", "gzip-file-as-resource", {"name": "relay.txt.gz", "data": payload, "outputType": "resourceLink"})
    for uri in ("demo://resource/session/relay.txt.gz", "demo://resource/static/document/features.md",
                "demo://resource/dynamic/text/5", "demo://resource/dynamic/blob/6"):
        out[uri] = without_clock((await client.read_resource(uri)).model_dump())
    try:
        await client.read_resource("demo://resource/dynamic/text/0")
    except Exception as exc:  # the SDK raises the server's JSON-RPC error; what matters is that it is the same
        out["read_error"] = (type(exc).__name__, str(exc), getattr(getattr(exc, "error", None), "code", None))
    features = "demo://resource/static/document/features.md"
    out["subscribe"] = (await client.subscribe_resource(features)).model_dump()
    await seen.log_containing("Received Subscribe Resource request")
    out["unsubscribe"] = (await client.unsubscribe_resource(features)).model_dump()
    await seen.log_containing("Received Unsubscribe Resource request")

    out["simple"] = (await client.get_prompt("simple-prompt")).model_dump()
    out["args"] = (await client.get_prompt("args-prompt", {"city": "Zürich", "state": "ZH"})).model_dump()
    out["completable"] = (await client.get_prompt("completable-prompt",
                                                  {"department": "Sales", "name": "Eve"})).model_dump()
    out["resource_prompt"] = without_clock(
        (await client.get_prompt("resource-prompt", {"resourceType": "Blob", "resourceId": "2"})).model_dump())
    prompt_ref = types.PromptReference(type="ref/prompt", name="completable-prompt")
    out["complete_department"] = (await client.complete(prompt_ref, {"name": "department", "value": "S"})).model_dump()
    out["complete_name"] = (await client.complete(prompt_ref, {"name": "name", "value": ""},
                                                  {"department": "Engineering"})).model_dump()
    template_ref = types.ResourceTemplateReference(type="ref/resource", uri="demo://resource/dynamic/text/{resourceId}")
    out["complete_template"] = (await client.complete(template_ref, {"name": "resourceId", "value": "12"})).model_dump()
    await tool("task_required", "simulate-research-query", {"topic": "relays"})

    out["asked"] = seen.asked
    out["logs"] = [{**entry, "data": _SESSION.sub("session <id>", str(entry["data"]))} for entry in seen.logs]
    return out


@contextmanager
def http_server(command: NodeCommand, port: int, log: IO[bytes]) -> Iterator[str]:
    """server-everything on loopback, its output in `log`; stopped (SIGTERM, then SIGKILL) whatever happens."""
    proc = subprocess.Popen(command.argv, env=command.environ(), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=proc)
        assert command.url is not None
        yield command.url
    finally:
        stop(proc)


def relayed(url: str, tmp_path: Path, transport: str, errlog: IO[str]) -> Any:
    """`relay run --url URL` as the SDK client's stdio server, its stderr in `errlog`."""
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "relay", "run", "--url", url, "--transport", transport],
                                   env=relay_env(tmp_path))
    return stdio_client(params, errlog=errlog)


async def observe(target: Any) -> dict[str, Any]:
    seen = Observer()
    with anyio.fail_after(45):
        async with Client(target, mode="legacy", sampling_callback=seen.sampling,
                          elicitation_callback=seen.elicitation, list_roots_callback=seen.roots,
                          logging_callback=seen.logging) as client:
            return await scripted_sdk(client, seen)


UPSTREAMS = {
    "streamable-http": everything_streamable_http_command,
    "sse": everything_sse_command,
}


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # logging, subscribe: 2025-era
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_http_upstream_is_transparent(tmp_path: Path, transport: str) -> None:
    port = free_port()
    with ((tmp_path / "server.log").open("wb") as server_log, (tmp_path / "relay.log").open("w") as relay_log,
          http_server(UPSTREAMS[transport](port), port, server_log) as url):
        straight = await observe(sse_client(url) if transport == "sse" else url)
        explicit = await observe(relayed(url, tmp_path, transport, relay_log))
        auto = await observe(relayed(url, tmp_path, "auto", relay_log))

    # What the script relies on actually happened, straight to the server.
    assert straight["echo"]["content"][0]["text"] == "Echo: héllo ✓ \u2028 \u2029 \"quoted\" \\ 💳"
    assert straight["progress"] == [(1.0, 3.0, None), (2.0, 3.0, None), (3.0, 3.0, None)]
    assert [kind for kind, _ in straight["asked"]] == ["roots", "sampling", "elicitation"]
    assert straight["sum_invalid"]["is_error"] is True
    assert "read_error" in straight

    for key in straight:
        assert explicit[key] == straight[key], key
        assert auto[key] == straight[key], key
    assert "Traceback" not in await anyio.Path(tmp_path / "relay.log").read_text()
