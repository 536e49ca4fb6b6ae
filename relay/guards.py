"""The ONE place that decides which guards run, and in which order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from relay.pipeline import Interceptor, Pipeline
from relay.transcript.recorder import Recorder


@dataclass(frozen=True)
class ChainOptions:
    session_id: str
    server: str
    transcript_dir: Path | None  # None: recording off


def build_chain(options: ChainOptions) -> Pipeline:
    guards: list[Interceptor] = []
    # Masking, approval and auth guards slot in here, before the recorder.
    # The recorder runs last so that it writes exactly what is forwarded, before it is forwarded.
    if options.transcript_dir is not None:
        guards.append(Recorder(options.transcript_dir, options.session_id, options.server))
    return Pipeline(guards)
