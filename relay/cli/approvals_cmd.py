"""`relay approvals`, `relay approve ID`, `relay deny ID`: decide on tool calls waiting for a human.

They talk to every relay session of this user over its local approval socket, so they work from any terminal,
including when the relay that holds the call was started by an assistant and has no terminal of its own.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from relay.cli.common import fail, run_async
from relay.console import console, shown
from relay.errors import UsageError

approvals_app = typer.Typer(help="Tool calls waiting for a human.", invoke_without_command=True)

Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why (shown to the agent and recorded).")]


def _describe(item: dict[str, Any]) -> str:
    left = max(0, round(float(item.get("expires_at", 0)) - time.time()))
    who = item.get("requester") or {}
    name = who.get("name") or who.get("email") or who.get("subject") or who.get("user") or "?"
    args = json.dumps(item.get("arguments"), ensure_ascii=False)
    if len(args) > 300:
        args = args[:300] + "..."
    # What the agent and the server chose is shown escaped: no control characters on the approver's terminal.
    return shown(f"{item.get('id')}  {item.get('server')} / {item.get('tool')}  for {name}  {left}s left  "
                 f"({item.get('rule')})") + f"\n    arguments: {shown(args)}"


@approvals_app.callback()
def approvals(ctx: typer.Context) -> None:
    """Without a subcommand: a live view of pending calls, with keys to approve or deny them (q to quit)."""
    if ctx.invoked_subcommand is not None:
        return
    if not sys.stdin.isatty():
        raise fail(UsageError("`relay approvals` is interactive; use `relay approvals list`, `relay approve ID` "
                              "or `relay deny ID` in scripts"))
    from relay.cli.approvals_view import watch

    watch(console())


@approvals_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="A JSON array on stdout.")] = False) -> None:
    """Pending calls of every relay session of this user: tool, masked arguments, who, how long left."""
    from relay.approval.local import pending_everywhere

    pending = [item for _, item in run_async(pending_everywhere)]
    if as_json:
        from relay.transports.stdio import write_stdout

        write_stdout((json.dumps(pending, indent=2) + "\n").encode())
        return
    out = console()
    if not pending:
        out.print("no calls waiting for approval", markup=False)
    for item in pending:
        out.print(_describe(item), markup=False, highlight=False, soft_wrap=True)


def _decide(request_id: str, approve: bool, reason: str | None) -> None:
    from relay.approval.local import ask, pending_everywhere

    async def go() -> dict[str, Any]:
        for path, item in await pending_everywhere():
            if item.get("id") == request_id:
                # The decision names the digest of the arguments it was shown: it releases that call only.
                return await ask(path, {"op": "decide", "id": request_id, "digest": item.get("digest"),
                                        "approve": approve, "reason": reason})
        return {"error": f"no pending request {request_id}"}

    answer = run_async(go)
    if "error" in answer:
        raise fail(UsageError(str(answer["error"])))
    verb = "approved" if approve else "denied"
    more = "" if answer.get("decided") else " (more approvers are needed)"
    console().print(f"{verb} {request_id}{more}", markup=False, highlight=False)


def approve(request_id: Annotated[str, typer.Argument(metavar="ID")], reason: Reason = None) -> None:
    """Approve a waiting call: it runs with exactly the arguments shown."""
    _decide(request_id, True, reason)


def deny(request_id: Annotated[str, typer.Argument(metavar="ID")], reason: Reason = None) -> None:
    """Deny a waiting call: the agent gets a tool error with your reason."""
    _decide(request_id, False, reason)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
    app.command("approve")(approve)
    app.command("deny")(deny)
