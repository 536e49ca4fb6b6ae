"""Transparency over HTTP upstreams: the same scripted session, straight to an `mcp` SDK server and through
`relay run --url`, must give identical answers, over Streamable HTTP (SSE and JSON answers) and legacy SSE,
in both protocol eras (the initialize handshake and 2026-07-28's stateless requests)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support.processes import relay_env, sdk_server

pytestmark = pytest.mark.anyio


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    prompt = params.messages[0].content
    text = getattr(prompt, "text", "?")
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=f"sampled:{text}"),
                                     model="test-model")


async def elicitation(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "forty-two"})


async def scripted(client: Client) -> dict[str, Any]:
    """What a careful agent would do; returns everything it observed, ready to compare."""
    seen: dict[str, Any] = {}
    seen["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
    seen["echo"] = (await client.call_tool("echo", {"text": "héllo ✓"})).model_dump()
    seen["add"] = (await client.call_tool("add", {"a": 2, "b": 40})).model_dump()
    progress: list[tuple[float, float | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total))

    seen["progress"] = (await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)).model_dump()
    seen["progress_notes"] = progress
    seen["sample"] = (await client.call_tool("sample", {"prompt": "hi"})).model_dump()
    seen["elicit"] = (await client.call_tool("elicit", {"question": "meaning?"})).model_dump()
    seen["big"] = len((await client.call_tool("big", {"kb": 300})).content[0].text)  # type: ignore[union-attr]
    seen["fail"] = (await client.call_tool("fail", {})).model_dump()
    seen["resource"] = (await client.read_resource("test://static")).model_dump()
    seen["prompt"] = (await client.get_prompt("greet", {"name": "Ada"})).model_dump()
    return seen


def relayed(url: str, tmp_path: Path, transport: str) -> Any:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "relay", "run", "--url", url, "--transport", transport],
                                   env=relay_env(tmp_path))
    return stdio_client(params, errlog=(tmp_path / "relay-stderr.log").open("w"))


def direct(url: str, transport: str) -> Any:
    return sse_client(url) if transport == "sse" else url


CASES = [
    ("streamable-http", ()),
    ("streamable-http", ("--json-response",)),
    ("sse", ()),
]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize(("transport", "extra"), CASES, ids=["streamable-sse", "streamable-json", "legacy-sse"])
async def test_relay_is_transparent(tmp_path: Path, transport: str, extra: tuple[str, ...], mode: str) -> None:
    if mode == "2026-07-28" and transport == "sse":
        pytest.skip("2026-07-28 is not spoken over the legacy HTTP+SSE transport by the SDK client")
    with sdk_server(transport, *extra) as (url, _):
        results = []
        for relay_transport in (None, transport, "auto"):
            target = direct(url, transport) if relay_transport is None else relayed(url, tmp_path, relay_transport)
            with anyio.fail_after(60):
                async with Client(target, mode=mode, sampling_callback=sampling,  # type: ignore[arg-type]
                                  elicitation_callback=elicitation) as client:
                    results.append(await scripted(client))
        straight, explicit, auto = results
        if "--json-response" in extra:
            assert straight["progress_notes"] == []  # the SDK drops them in JSON mode
        else:
            assert straight["progress_notes"] == [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)]
        assert straight["sample"]["content"][0]["text"] == "sampled:hi"
        assert straight["big"] == 300 * 1024
        assert explicit == straight
        assert auto == straight
    log = (tmp_path / "relay-stderr.log").read_text()
    assert "Traceback" not in log
