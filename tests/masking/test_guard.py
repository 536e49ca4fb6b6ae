"""The masking guard in the pipeline: server messages masked, client requests passed/masked/blocked as
configured, transcripts always masked, and a failing masker withholds the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.jsonrpc import GUARD_ERROR, Direction, Message
from relay.masking.guard import MaskingGuard
from relay.masking.mask import MaskPolicy
from relay.pipeline import Pipeline
from relay.transcript.recorder import Recorder
from tests.support.transcripts import message_texts, records
from tests.support.transcripts import recorder as make_recorder

pytestmark = pytest.mark.anyio
PAN = "4111111111111111"
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "lookup", "arguments": {"card": PAN}}}


def chain(tmp_path: Path, client: str = "pass") -> tuple[Pipeline, Recorder]:
    recorder = make_recorder(tmp_path)
    return Pipeline([MaskingGuard(MaskPolicy(), client), recorder]), recorder  # type: ignore[arg-type]


def transcript(recorder: Recorder) -> str:
    return "".join(message_texts(recorder.writer.path))


async def test_requests_pass_as_sent_but_are_recorded_masked(tmp_path: Path) -> None:
    pipeline, recorder = chain(tmp_path)
    out = await pipeline.process(Message.build(CALL, Direction.CLIENT_TO_SERVER))
    assert out.forward is not None and PAN in out.forward.raw.decode()
    resp = await pipeline.process(Message.build({"jsonrpc": "2.0", "id": 1, "result": {"text": PAN}},
                                                Direction.SERVER_TO_CLIENT))
    assert resp.forward is not None and PAN not in resp.forward.raw.decode()
    assert PAN not in transcript(recorder) and "************1111" in transcript(recorder)
    notes = [r.get("notes") for r in records(recorder.writer.path)[1:]]
    assert notes[0][0]["actions"][0]["pointer"] == "/params/arguments/card"


async def test_requests_can_be_masked_or_blocked(tmp_path: Path) -> None:
    pipeline, _ = chain(tmp_path / "m", "mask")
    out = await pipeline.process(Message.build(CALL, Direction.CLIENT_TO_SERVER))
    assert out.forward is not None and PAN not in out.forward.raw.decode()
    pipeline, _ = chain(tmp_path / "b", "block")
    out = await pipeline.process(Message.build(CALL, Direction.CLIENT_TO_SERVER))
    assert out.forward is None and out.reply is not None
    assert "card data" in out.reply.obj["error"]["message"] and PAN not in out.reply.raw.decode()


async def test_a_masker_that_fails_withholds_the_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, recorder = chain(tmp_path)

    def broken(text: str) -> list[object]:
        raise RuntimeError("detector broke")

    monkeypatch.setattr("relay.masking.mask.scan", broken)
    monkeypatch.setattr("relay.masking.mask.scan_many", broken)  # how Masker.message reads a message's texts
    out = await pipeline.process(Message.build({"jsonrpc": "2.0", "id": 3, "result": {"text": PAN}},
                                               Direction.SERVER_TO_CLIENT))
    assert out.forward is not None and out.forward.obj["error"]["code"] == GUARD_ERROR
    assert PAN not in out.forward.raw.decode() and PAN not in recorder.writer.path.read_text()
