"""The ONE place that decides which guards run, and in which order."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from relay.config import (
    ApprovalConfig,
    CollectorConfig,
    IdentityConfig,
    MaskingConfig,
    ServerConfig,
    TranscriptConfig,
)
from relay.pipeline import Interceptor, Pipeline

if TYPE_CHECKING:
    from relay.approval.channels import Channel
    from relay.approval.guard import ApprovalGuard
    from relay.auth.login import Login
    from relay.transcript.hostkey import KeyStore

log = logging.getLogger("relay.guards")


@dataclass(frozen=True)
class ChainOptions:
    session_id: str
    server: ServerConfig
    transcript_dir: Path | None  # None: recording off
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    transcripts: TranscriptConfig = field(default_factory=TranscriptConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    identity: dict[str, Any] | None = None  # who the session acts for (the genesis records it)
    approvals: ApprovalConfig = field(default_factory=ApprovalConfig)
    approval_identity: IdentityConfig | None = None  # approvals.remote.identity, resolved
    approval_login: Login | None = None  # the session's login, when it is that same identity
    protocol_on_terminal: bool = False  # the MCP client speaks over relay's stdin/stdout, and they are a terminal


def build_chain(options: ChainOptions) -> Pipeline:
    guards: list[Interceptor] = []
    if options.masking.enabled:
        guards.append(_masking_guard(options.masking))
    else:
        log.warning("masking is OFF (masking.unsafe_disable): card data passes to the agent and the transcript")
    def report(event: dict[str, Any]) -> None:
        pipeline.report(event)  # the pipeline exists by the time a guard or channel has anything to report

    # After masking, so that approvers see masked arguments; before the recorder, so that what it records is
    # what was decided (and the grants relay obtained to ask).
    approval = _approval_guard(options, report)
    if approval is not None:
        guards.append(approval)
    # The recorder runs last so that it writes exactly what is forwarded (masked), before it is forwarded.
    if options.transcript_dir is not None:
        guards.append(_recorder(options, options.transcript_dir))
    pipeline = Pipeline(guards)
    return pipeline


def _approval_guard(options: ChainOptions, report: Callable[[dict[str, Any]], None]) -> ApprovalGuard | None:
    config = options.approvals
    if not config.rules and config.default == "allow":
        return None  # nothing to judge: not a line on the hot path
    from relay.approval.guard import ApprovalGuard
    from relay.approval.policy import Policy

    channels: dict[str, Channel] = {}
    named = {name for rule in config.rules for name in rule.channels}
    if "tty" in named:
        from relay.approval.tty import TtyChannel

        channels["tty"] = TtyChannel(protocol_on_terminal=options.protocol_on_terminal)
    if "elicitation" in named:
        from relay.approval.elicitation import ElicitationChannel

        channels["elicitation"] = ElicitationChannel()
    if config.remote is not None:
        from relay.approval.remote import RemoteChannel

        channels["remote"] = RemoteChannel(config.remote, options.approval_identity, options.approval_login,
                                           on_grant=report)
    return ApprovalGuard(Policy(config), server=options.server.name, session_id=options.session_id,
                         identity=options.identity, channels=channels, report=report)


def _recorder(options: ChainOptions, directory: Path) -> Interceptor:
    from relay.transcript.hostkey import HostKeys
    from relay.transcript.recorder import Recorder
    from relay.transcript.recovery import recover
    from relay.transcript.writer import SessionWriter, WriterOptions

    t = options.transcripts
    host_key = HostKeys(cast("KeyStore", t.effective_key_store), t.key_file).load()
    recover(directory, host_key)
    server = options.server
    described: dict[str, str] = {"name": server.name, "transport": server.transport}
    if server.url:
        described["url"] = server.url
    else:
        described["command"] = server.command[0]  # not its arguments: they may carry secrets
    writer = SessionWriter(directory, options.session_id, described, host_key,
                           WriterOptions(fsync=t.fsync, fsync_interval=t.fsync_interval, identity=options.identity))
    c = options.collector
    if c.url is None:
        return Recorder(writer, host_key, unsafe_continue=t.unsafe_continue_on_error)
    from relay.transcript.ship import Shipper

    return Recorder(writer, host_key, unsafe_continue=t.unsafe_continue_on_error, shipper=Shipper(c, writer.path),
                    required_lag=c.max_lag if c.required else None)


def _masking_guard(config: MaskingConfig) -> Interceptor:
    from relay.masking.guard import ClientMode, MaskingGuard
    from relay.masking.keys import token_key
    from relay.masking.mask import CustomRule, MaskPolicy, normalise_key
    from relay.masking.modes import PanMode

    rules = tuple(
        CustomRule(name=r.name, replace=r.replace, pattern=re.compile(r.pattern) if r.pattern else None,
                   keys=frozenset(normalise_key(k) for k in r.keys))
        for r in config.rules)
    policy = MaskPolicy(pan_mode=cast(PanMode, config.pan), rules=rules,
                        token_key=token_key() if config.pan == "token" else None)
    return MaskingGuard(policy, cast(ClientMode, config.client_requests))
