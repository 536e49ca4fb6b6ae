"""`relay policy test SERVER TOOL`: which approval rule a tool call would match, and why the others do not."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from relay import config as config_mod
from relay.cli import state
from relay.cli.common import fail
from relay.console import console, redact
from relay.errors import RelayError, UsageError

policy_app = typer.Typer(help="The approval policy (the config's `approvals:` section).", no_args_is_help=True)


@policy_app.command("test")
def test(
    server: Annotated[str, typer.Argument(metavar="SERVER", help="The server's name, as in `servers:`.")],
    tool: Annotated[str, typer.Argument(metavar="TOOL", help="The tool's name.")],
    *,
    args: Annotated[str, typer.Option("--args", metavar="JSON", help="The call's arguments, a JSON object.")] = "{}",
    identity: Annotated[str | None, typer.Option("--identity", metavar="SUBJECT",
                                                 help="The caller's subject (or e-mail) \\[default: no caller].")] = None,
    groups: Annotated[list[str] | None, typer.Option("--group", metavar="GROUP",
                                                     help="A group the caller is in (repeatable).")] = None,
    annotations: Annotated[list[str] | None, typer.Option("--annotation", metavar="KEY=VALUE",
                                                          help="A tool annotation from tools/list, e.g. "
                                                               "destructiveHint=true (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The decision as JSON on stdout.")] = False,
) -> None:
    """Evaluate the approval rules for one call: each rule, matched or why not, then the decision (stderr)."""
    from relay.approval.policy import Call, Policy

    try:
        cfg = config_mod.load(state.config_path)
        call = Call(server=server, tool=tool, arguments=_arguments(args), annotations=_annotations(annotations or []),
                    identity=_identity(identity, groups or []))
    except RelayError as err:
        raise fail(err) from None
    policy = Policy(cfg.approvals)
    out = console()
    where = str(cfg.path) if cfg.path else "no config file"
    out.print(f"policy: {where}: {len(cfg.approvals.rules)} rule(s), default {cfg.approvals.default}",
              markup=False, highlight=False, soft_wrap=True)
    if cfg.servers and server not in cfg.servers:
        out.print(f"note: no server named '{server}' in the config (rules can still name it)",
                  markup=False, highlight=False, soft_wrap=True)
    for line in policy.explain(call):
        out.print(redact(line), markup=False, highlight=False, soft_wrap=True)
    if as_json:
        d = policy.evaluate(call)
        report = {"action": d.action, "rule": d.rule.index if d.rule else None,
                  "line": d.rule.line if d.rule else None, "reason": d.reason, "channels": list(d.channels),
                  "approvers": d.approvers, "timeout": d.timeout}
        from relay.transports.stdio import write_stdout

        write_stdout((json.dumps(report, indent=2) + "\n").encode())


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("--args must be a JSON object", hint='e.g. --args \'{"limit": 500}\'')
    return value


def _annotations(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--annotation {pair!r}: expected KEY=VALUE", hint="e.g. --annotation destructiveHint=true")
        try:
            out[key] = json.loads(text)  # true, false, numbers; anything else is a string
        except json.JSONDecodeError:
            out[key] = text
    return out


def _identity(subject: str | None, groups: list[str]) -> dict[str, Any] | None:
    if subject is None and not groups:
        return None
    email = subject if subject and "@" in subject else None
    return {"subject": subject, "name": None, "email": email, "groups": groups}


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
