"""`relay demo`: a scripted agent session through relay against the embedded payments server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
from rich.markup import escape
from rich.panel import Panel

from relay import paths
from relay.call import ScriptedClient
from relay.config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ApprovalConfig,
    ApprovalRule,
    ServerConfig,
    TranscriptConfig,
)
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
    # Refunds move money: the demo's policy makes them wait for a human (here the demo plays that human).
    refunds = ApprovalRule(index=0, line=0, server=None, tool="refund_*", annotations={}, args={}, identity=None,
                           groups=(), action="require_approval", reason="refunds move money", channels=("local",))
    target = Target(server=server, transcript_dir=directory, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
                    transcripts=TranscriptConfig(key_store="file", key_file=key_file),
                    approvals=ApprovalConfig(timeout=60, rules=(refunds,)))
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
        refund = {"order_id": "ord_1001", "amount": 5, "reason": "demo: goodwill refund"}
        out.print(f"The agent asks for a refund: refund_payment {json.dumps(refund)}. Policy: refunds wait for a "
                  "human. relay holds the call...")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_approve_as_a_person)
            result = await client.request("tools/call", {"name": "refund_payment", "arguments": refund})
        out.print(Panel(escape(_text(result)), title="refund_payment, after approval", subtitle="what the agent saw",
                        title_align="left"))

    await run_scripted(target, script)
    sessions = sorted((p for p in directory.glob("*.jsonl") if p.name != "ledger.jsonl"),
                      key=lambda p: p.stat().st_mtime)
    if sessions:
        _summarise(sessions[-1], key_file)
    out.print("Card numbers reached the agent masked (last four digits only), the CVV not at all; the server "
              "sent them in clear. The refund ran only after a person approved it, and the transcript says who.")


async def _approve_as_a_person() -> None:
    """What a person does in another terminal: `relay approvals list`, then `relay approve ID --reason ...`."""
    from relay.approval.local import ask, pending_everywhere

    out = console()
    with anyio.fail_after(30):
        while True:
            waiting = await pending_everywhere()
            if waiting:
                break
            await anyio.sleep(0.1)
    path, item = waiting[0]
    out.print(f"  [dim]$ relay approvals list[/]\n  {escape(str(item['id']))}  {escape(str(item['tool']))} "
              f"{escape(json.dumps(item['arguments']))}  waiting for approval")
    await anyio.sleep(1)
    reason = "goodwill refund, checked by a person"
    await ask(path, {"op": "decide", "id": item["id"], "digest": item["digest"], "approve": True, "reason": reason})
    out.print(f"  [dim]$ relay approve {escape(str(item['id']))} --reason \"{reason}\"[/]  (bound to the exact "
              "arguments by their digest)")


def _summarise(transcript: Path, key_file: Path) -> None:
    from relay.transcript.format import split_line
    from relay.transcript.hostkey import HostKeys
    from relay.transcript.verify import Trust, verify_paths

    out = console()
    masked: dict[str, int] = {}
    records = 0
    approvals: list[str] = []
    for line in transcript.read_bytes().splitlines():
        records += 1
        rec = json.loads(split_line(line)[0])
        if rec.get("type") == "approval" and rec.get("decision") == "approved":
            approvals.append(f"{rec.get('tool')} approved by {rec.get('by')} ({rec.get('reason')})")
        for note in rec.get("notes", []):
            for action in note.get("actions", []):
                masked[action["rule"]] = masked.get(action["rule"], 0) + action["count"]
    out.print(f"Transcript: [bold]{escape(str(transcript))}[/] ({records} records, mode 0600): every message, "
              "both directions, masked, signed and hash-chained, written before it was forwarded.")
    if masked:
        out.print("Masked in this session: " + ", ".join(f"{n} x {rule}" for rule, n in sorted(masked.items())))
    for approval in approvals:
        out.print(f"Approval recorded: {escape(approval)}")
    trust = Trust(HostKeys("file", key_file).trusted())
    [result] = verify_paths([transcript], trust)
    verdict = "[green]OK[/]" if result.exit_code == 0 else "[red]FAIL[/]"
    out.print(f"relay verify: {verdict} {result.outcome}, {result.records} records, signatures and hash chain "
              f"intact{'' if result.exit_code == 0 else ': ' + escape(str(result.reason))}.")
