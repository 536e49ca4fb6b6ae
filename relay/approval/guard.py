"""The approval guard: tool calls the policy flags wait for a human; denied ones come back as tool errors.

Only client-to-server `tools/call` requests are judged. A call that needs approval waits in a task of its own
(the session does that when `holds` says so) while the request is offered on its channels: the local socket
(passive, always there) and the active channels configured (remote). The decision, the approver and the reason go
into the transcript, and so do refused decisions. Timeout, no reachable channel, a malformed decision, or a
withdrawn request: denied.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from relay.approval.broker import Broker
from relay.approval.channels import Channel, ChannelUnavailable, ClientLink
from relay.approval.policy import Call, Decision, Policy
from relay.approval.request import ApprovalRequest, Verdict, arguments_digest
from relay.jsonrpc import Direction, Kind, Message
from relay.pipeline import Context, Rejected

log = logging.getLogger("relay.approval")

PASSIVE = ("local",)  # channels that are always there: people come to relay (`relay approvals`)
SELF_APPROVAL = ("elicitation",)  # channels where the person the agent acts for approves its call


def _tool_error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


class ApprovalGuard:
    name = "approval"
    PROGRESS_EVERY = 2.0  # seconds between progress notifications while a call waits

    def __init__(self, policy: Policy, *, server: str, session_id: str, identity: dict[str, Any] | None,
                 broker: Broker | None = None, report: Callable[[dict[str, Any]], None] | None = None,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self.policy = policy
        self.server = server
        self.session_id = session_id
        self.identity = identity
        self.broker = broker or Broker()
        self.report = report
        self.channels = dict(channels or {})  # the active ones, by name: they go to people (remote)
        self._annotations: dict[str, dict[str, Any]] = {}
        self._decisions: dict[int, Decision] = {}
        self._waiting: dict[tuple[bool, Any], str] = {}  # JSON-RPC id of a held call -> approval request id
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(2)
        self._client_capabilities: dict[str, Any] = {}  # what the client declared in `initialize`

    # -- the pipeline's hooks -----------------------------------------------------------------------------

    def holds(self, msg: Message) -> bool:
        if not _is_call(msg):
            return False
        decision = self._evaluate(msg)
        self._decisions[id(msg)] = decision
        return bool(decision.action == "require_approval")

    async def intercept(self, msg: Message, ctx: Context) -> Message:
        if msg.direction is Direction.SERVER_TO_CLIENT:
            if ctx.method == "tools/list" and msg.kind is Kind.RESPONSE:
                self._remember_annotations(msg)
            return msg
        if msg.kind is Kind.NOTIFICATION and msg.method == "notifications/cancelled":
            request_id = self._waiting.get(_key(msg.params.get("requestId")))
            if request_id is not None:
                self.broker.withdraw(request_id, "the client cancelled the call")
            return msg
        if not _is_call(msg):
            if msg.kind is Kind.REQUEST and msg.method == "initialize":
                caps = msg.params.get("capabilities")
                self._client_capabilities = caps if isinstance(caps, dict) else {}
            return msg
        decision = self._decisions.pop(id(msg), None) or self._evaluate(msg)
        if decision.action == "allow":
            return msg
        tool = str(msg.params.get("name"))
        if decision.action == "deny":
            reason = decision.reason or "this tool is not allowed here"
            self._record({"event": "approval", "decision": "denied", "by": "policy", "tool": tool,
                          "rule": _rule_name(decision), "reason": reason})
            raise Rejected(f"denied by policy: {reason}", result=_tool_error(f"Denied by policy: {reason}"))
        return await self._ask(msg, ctx, decision, tool)

    async def serve(self) -> None:
        from relay.approval.local import serve_local

        async with serve_local(self.broker, self.session_id):
            await anyio.sleep_forever()

    async def aclose(self, reason: str = "client_closed") -> None:
        for request in self.broker.pending():
            self.broker.withdraw(request.id, "the session ended")
        for channel in self.channels.values():
            await channel.aclose()

    # -- asking a human ------------------------------------------------------------------------------------

    async def _ask(self, msg: Message, ctx: Context, decision: Decision, tool: str) -> Message:
        arguments = msg.params.get("arguments", {})
        shown = (ctx.record or msg).params.get("arguments", {})  # masked: approvers never see card data
        request = ApprovalRequest(
            id=f"{self._prefix}-{next(self._ids)}", session=self.session_id, server=self.server, tool=tool,
            digest=arguments_digest(arguments), requester=self._requester(), arguments=shown,
            rule=_rule_name(decision), reason=decision.reason, expires_at=time.time() + decision.timeout,
            approvers=decision.approvers)
        channels = [c for c in decision.channels if c in PASSIVE or c in self.channels]
        base = {"event": "approval", "id": request.id, "tool": tool, "digest": request.digest,
                "nonce": request.nonce, "rule": request.rule}
        if not channels:
            self._record({**base, "decision": "denied", "by": None,
                          "reason": f"no approval channel available ({', '.join(decision.channels)})"})
            raise Rejected("no approval channel", result=_tool_error(
                f"Denied: this call needs approval on {', '.join(decision.channels)}, which this relay cannot reach"))
        self._record({**base, "decision": "requested", "channels": channels, "requester": request.requester,
                      "expires_in": round(decision.timeout)})
        if "local" in channels:
            log.warning("tool call %s on %s waits for approval: `relay approve %s` or `relay deny %s`",
                        tool, self.server, request.id, request.id)
        else:
            log.warning("tool call %s on %s waits for approval %s on %s", tool, self.server, request.id,
                        ", ".join(channels))
        key = _key(msg.id)
        self._waiting[key] = request.id
        reachable = list(channels)

        def refused(approver: str, channel: str, why: str) -> None:
            self._record({**base, "decision": "refused", "by": approver, "channel": channel, "reason": why})

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._progress, msg, ctx, request)
                client = ClientLink(self._client_capabilities, ctx.ask_sender)
                for name in channels:
                    if name in self.channels:
                        tg.start_soon(self._offer, self.channels[name], request, base, reachable, client)
                verdict = await self.broker.wait(request, decision.approvers, refused, tuple(channels))
                tg.cancel_scope.cancel()
        finally:
            self._waiting.pop(key, None)
        return self._settle(msg, request, verdict, decision, base)

    async def _offer(self, channel: Channel, request: ApprovalRequest, base: dict[str, Any],
                     reachable: list[str], client: ClientLink) -> None:
        """One active channel offers the request; when it fails and no channel is left, the call is denied."""
        try:
            await channel.offer(request, self.broker, client)
            return
        except ChannelUnavailable as exc:
            why = str(exc)
        except Exception as exc:  # a fault in a channel is a channel lost, never an open door
            log.exception("approval channel %s failed", channel.name)
            why = f"the {channel.name} approval channel failed ({type(exc).__name__})"
        reachable.remove(channel.name)
        if not self.broker.is_pending(request.id):
            return
        if reachable:
            log.warning("approval %s: channel %s is unavailable (%s); still waiting on %s",
                        request.id, channel.name, why, ", ".join(reachable))
            self._record({**base, "decision": "unavailable", "by": None, "channel": channel.name, "reason": why})
            return
        self.broker.fail(request.id, why, channel.name)

    def _settle(self, msg: Message, request: ApprovalRequest, verdict: Verdict, decision: Decision,
                base: dict[str, Any]) -> Message:
        # The requester answering for their own agent through the client: allowed only where a rule names the
        # channel, and always marked as such.
        own = {"self_approval": True} if verdict.channel in SELF_APPROVAL else {}
        if verdict.approved:
            self._record({**base, "decision": "approved", "by": verdict.approver, "reason": verdict.reason,
                          "channel": verdict.channel, **own})
            return msg
        if verdict.approver is not None:
            self._record({**base, "decision": "denied", "by": verdict.approver, "reason": verdict.reason,
                          "channel": verdict.channel, **own})
            text = f"Denied by {verdict.approver}" + (f": {verdict.reason}" if verdict.reason else "")
        elif verdict.channel is not None:  # no channel left, or one failed in a way that must not be waited out
            self._record({**base, "decision": "denied", "by": None, "reason": verdict.reason,
                          "channel": verdict.channel})
            text = f"Denied: {verdict.reason}"
        elif verdict.reason is not None:  # withdrawn
            self._record({**base, "decision": "withdrawn", "by": None, "reason": verdict.reason})
            text = f"Not run: {verdict.reason}"
        else:
            self._record({**base, "decision": "timeout", "by": None, "reason": None})
            text = f"No approver answered within {_duration(decision.timeout)}"
        raise Rejected(text, result=_tool_error(text))

    async def _progress(self, msg: Message, ctx: Context, request: ApprovalRequest) -> None:
        meta = msg.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if token is None or ctx.to_sender is None:
            return
        for n in itertools.count(1):
            await anyio.sleep(self.PROGRESS_EVERY)
            left = max(0, round(request.expires_at - time.time()))
            note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                "progressToken": token, "progress": n,
                "message": f"waiting for approval {request.id} ({left}s left)"}}
            await ctx.to_sender(Message.build(note, Direction.SERVER_TO_CLIENT))

    # -- helpers -------------------------------------------------------------------------------------------

    def _evaluate(self, msg: Message) -> Decision:
        tool = str(msg.params.get("name"))
        arguments = msg.params.get("arguments")
        return self.policy.evaluate(Call(server=self.server, tool=tool,
                                         arguments=arguments if isinstance(arguments, dict) else {},
                                         annotations=self._annotations.get(tool, {}), identity=self.identity))

    def _remember_annotations(self, msg: Message) -> None:
        result = msg.obj.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        for tool in tools if isinstance(tools, list) else []:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                notes = tool.get("annotations")
                self._annotations[tool["name"]] = notes if isinstance(notes, dict) else {}

    def _requester(self) -> dict[str, Any]:
        if self.identity is not None:
            return dict(self.identity)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return {"user": user}

    def _record(self, event: dict[str, Any]) -> None:
        if self.report is not None:
            self.report(event)


def _is_call(msg: Message) -> bool:
    return (msg.kind is Kind.REQUEST and msg.direction is Direction.CLIENT_TO_SERVER
            and msg.method == "tools/call")


def _rule_name(decision: Decision) -> str:
    return "default" if decision.rule is None else f"rule {decision.rule.index + 1}"


def _key(id_: Any) -> tuple[bool, Any]:
    return (isinstance(id_, str), id_)
