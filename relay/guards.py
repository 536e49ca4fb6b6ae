"""The ONE place that decides which guards run, and in which order."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from relay.config import MaskingConfig
from relay.pipeline import Interceptor, Pipeline
from relay.transcript.recorder import Recorder

log = logging.getLogger("relay.guards")


@dataclass(frozen=True)
class ChainOptions:
    session_id: str
    server: str
    transcript_dir: Path | None  # None: recording off
    masking: MaskingConfig = field(default_factory=MaskingConfig)


def build_chain(options: ChainOptions) -> Pipeline:
    guards: list[Interceptor] = []
    if options.masking.enabled:
        guards.append(_masking_guard(options.masking))
    else:
        log.warning("masking is OFF (masking.unsafe_disable): card data passes to the agent and the transcript")
    # Approval and identity guards slot in here.
    # The recorder runs last so that it writes exactly what is forwarded (masked), before it is forwarded.
    if options.transcript_dir is not None:
        guards.append(Recorder(options.transcript_dir, options.session_id, options.server))
    return Pipeline(guards)


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
