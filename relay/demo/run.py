"""`relay demo`: a scripted agent session through relay against the embedded payments server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.panel import Panel

from relay import paths
from relay.call import ScriptedClient
from relay.config import DEFAULT_MAX_MESSAGE_BYTES, ServerConfig, TranscriptConfig
from relay.console import console
from relay.runner import Target, run_scripted
from relay.transports.memory import MemoryTransport

STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("The agent looks up an order", "lookup_order", {"order_id": "ord_1001"}),
    ("The agent reads a customer record", "get_customer", {"customer_id": "cus_002"}),
    ("The agent lists recent orders", "list_orders", {"limit": 3}),
]


def _text(result: Any) -> str:
    parts = [c.get("text", "") for c in (result or {}).get("content", []) if isinstance(c, dict) and c.get("type") == "text"]
    return "\n".join(parts[:1]) or json.dumps(result)[:2000]


async def run_demo(transcript_dir: Path | None) -> None:
    directory = transcript_dir or paths.state_home() / "demo-transcripts"
    server = ServerConfig(name="demo-payments", command=(sys.executable, "-m", "relay.demo.server", "--quiet"),
                          transport="stdio")
    # The demo signs with its own host key in a 0600 file next to its transcripts: it needs no OS keyring and
    # leaves the real host key alone.
    key_file = paths.state_home() / "demo-keys" / "host-ed25519.pem"
    target = Target(server=server, transcript_dir=directory, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
                    transcripts=TranscriptConfig(key_store="file", key_file=key_file))
    out = console()
    out.rule("[bold]relay demo[/]: an agent talks to a payments MCP server through relay")

    async def script(transport: MemoryTransport) -> None:
        client = ScriptedClient(transport, "relay-demo-agent")
        init = await client.initialize()
        info = init.get("serverInfo", {}) if isinstance(init, dict) else {}
        out.print(f"Connected to [bold]{escape(str(info.get('name')))}[/] "
                  f"(protocol {escape(str(init.get('protocolVersion')))}) through relay's guard chain.")
        tools = await client.request("tools/list", {})
        out.print("Tools offered: " + ", ".join(t["name"] for t in tools.get("tools", [])))
        for title, tool, args in STEPS:
            result = await client.request("tools/call", {"name": tool, "arguments": args})
            out.print(Panel(escape(_text(result)), title=f"{title}: {tool} {json.dumps(args)}",
                            subtitle="what the agent saw", title_align="left"))

    await run_scripted(target, script)
    sessions = sorted((p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"),
                      key=lambda p: p.stat().st_mtime)
    if sessions:
        _summarise(sessions[-1], key_file)
    out.print("Card numbers reached the agent masked (last four digits only), the CVV not at all; the server "
              "sent them in clear. Approvals are not in this version yet.")


def _summarise(transcript: Path, key_file: Path) -> None:
    from relay.transcript.format import split_line
    from relay.transcript.hostkey import HostKeys
    from relay.transcript.verify import Trust, verify_paths

    out = console()
    masked: dict[str, int] = {}
    records = 0
    for line in transcript.read_bytes().splitlines():
        records += 1
        for note in json.loads(split_line(line)[0]).get("notes", []):
            for action in note.get("actions", []):
                masked[action["rule"]] = masked.get(action["rule"], 0) + action["count"]
    out.print(f"Transcript: [bold]{escape(str(transcript))}[/] ({records} records, mode 0600): every message, "
              "both directions, masked, signed and hash-chained, written before it was forwarded.")
    if masked:
        out.print("Masked in this session: " + ", ".join(f"{n} x {rule}" for rule, n in sorted(masked.items())))
    trust = Trust(HostKeys("file", key_file).trusted())
    [result] = verify_paths([transcript], trust)
    verdict = "[green]OK[/]" if result.exit_code == 0 else "[red]FAIL[/]"
    out.print(f"relay verify: {verdict} {result.outcome}, {result.records} records, signatures and hash chain "
              f"intact{'' if result.exit_code == 0 else ': ' + escape(str(result.reason))}.")
