"""relay.transcript.writer and .recorder: private files, one signed record per message, and failing closed when a
record cannot be written."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from relay import __version__
from relay.errors import GuardError
from relay.jsonrpc import GUARD_ERROR, Direction, Kind, Message
from relay.paths import private_dir
from relay.pipeline import Context, Pipeline
from relay.transcript.recorder import Recorder
from relay.transcript.writer import new_session_id
from tests.support.transcripts import recorder as make
from tests.support.transcripts import records

pytestmark = pytest.mark.anyio

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def m(raw: str, direction: Direction = C2S) -> Message:
    return Message.parse(raw.encode(), direction)


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    rec = make(tmp_path / "transcripts", "20260101T000000Z-abcd1234")
    yield rec
    await rec.aclose()


@pytest.fixture
def dev_full() -> Iterator[int]:
    """A descriptor on /dev/full: every write fails with ENOSPC, as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is not available here")
    fd = os.open("/dev/full", os.O_WRONLY)
    yield fd
    os.close(fd)


def fill_disk(rec: Recorder, dev_full: int) -> int:
    """Point the recorder's open descriptor at /dev/full; returns a saved copy of the real one."""
    fd = rec.writer._fd  # the descriptor the recorder writes to; swapped underneath it, as a full disk would be
    assert fd is not None
    saved = os.dup(fd)
    os.dup2(dev_full, fd)
    return saved


def free_disk(rec: Recorder, saved: int) -> None:
    assert rec.writer._fd is not None
    os.dup2(saved, rec.writer._fd)
    os.close(saved)


# -- files and permissions --------------------------------------------------------------------------------


async def test_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "relay" / "transcripts"
    rec = make(directory, "s1")
    try:
        assert rec.writer.path == directory / "s1.jsonl"
        assert mode(directory) == 0o700
        assert mode(rec.writer.path) == 0o600
    finally:
        await rec.aclose()


async def test_a_looser_existing_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    os.chmod(directory, 0o755)
    rec = make(directory, "s1")
    await rec.aclose()
    assert mode(directory) == 0o700


def test_private_dir_creates_parents_and_only_tightens_the_leaf(tmp_path: Path) -> None:
    leaf = tmp_path / "a" / "b"
    assert private_dir(leaf) == leaf
    assert mode(leaf) == 0o700
    os.chmod(leaf, 0o777)
    private_dir(leaf)
    assert mode(leaf) == 0o700
    # A stricter mode the user chose is left alone.
    os.chmod(leaf, 0o500)
    private_dir(leaf)
    assert mode(leaf) == 0o500
    os.chmod(leaf, 0o700)


async def test_an_existing_transcript_is_never_appended_to(tmp_path: Path) -> None:
    (tmp_path / "s1.jsonl").write_text("someone else's\n")
    with pytest.raises(GuardError, match="cannot create transcript"):
        make(tmp_path, "s1")
    assert (tmp_path / "s1.jsonl").read_text() == "someone else's\n"


async def test_a_directory_that_cannot_be_made_is_a_guard_error(tmp_path: Path) -> None:
    # relay reports RelayErrors to the user; a raw OSError from creating the directory would be a traceback.
    (tmp_path / "file").write_text("")
    with pytest.raises(GuardError):
        make(tmp_path / "file" / "transcripts", "s1")


def test_session_ids_sort_by_time_and_are_unique() -> None:
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", i) for i in ids)


# -- records ----------------------------------------------------------------------------------------------


async def test_first_record_describes_the_session(recorder: Recorder) -> None:
    [first] = records(recorder.writer.path)
    assert first["seq"] == 1
    assert first["type"] == "genesis"
    assert first["format"] == "relay-transcript/1"
    assert first["session"] == "20260101T000000Z-abcd1234"
    assert first["relay"] == __version__
    assert first["server"] == {"name": "srv", "transport": "stdio", "command": "srv"}
    assert first["prev"] == "0" * 64
    assert first["identity"] is None and first["fsync"] == "interval:100"
    assert len(first["session_key"]) == 43 and len(first["host_key"]) == 43 and len(first["cert"]) == 86
    assert first["pid"] == os.getpid()
    assert first["user"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["ts"])


async def test_message_records_through_the_pipeline(recorder: Recorder) -> None:
    p = Pipeline([recorder])
    call = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"refund_payment","arguments":{"amount":5}}}'
    result = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok \\u00e9 é"}]}}'
    note = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}'
    error = '{"jsonrpc":"2.0","id":"l","error":{"code":-32601,"message":"no"}}'
    for raw, direction in [(call, C2S), (note, S2C), (result, S2C),
                           ('{"jsonrpc":"2.0","id":"l","method":"tools/list"}', C2S), (error, S2C)]:
        out = await p.process(m(raw, direction))
        assert out.forward is not None
    await p.aclose()
    recs = records(recorder.writer.path)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert [r["type"] for r in recs] == ["genesis", "message", "message", "message", "message", "message", "seal"]
    req, prog, resp, lreq, err = recs[1:6]
    assert (resp["outcome"], err["outcome"]) == ("success", "failure") and "outcome" not in prog
    assert req | {"ts": None, "prev": None} == {"seq": 2, "ts": None, "prev": None, "type": "message", "dir": "c2s", "kind": "request", "id": 7,
                                  "method": "tools/call", "tool": "refund_payment", "message": call}
    assert prog["dir"] == "s2c"
    assert prog["kind"] == "notification"
    assert prog["method"] == "notifications/progress"
    assert "id" not in prog
    assert "tool" not in prog
    # The response names the method and tool of the request it answers.
    assert resp["kind"] == "response"
    assert resp["id"] == 7
    assert resp["method"] == "tools/call"
    assert resp["tool"] == "refund_payment"
    assert resp["message"] == result  # the exact text, escapes and all
    assert lreq["method"] == "tools/list"
    assert "tool" not in lreq
    assert err["kind"] == "error"
    assert err["method"] == "tools/list"
    assert "tool" not in err


def _documented_members(msg: Message, ctx: Context) -> dict[str, object]:
    """A message record's members as docs/transcript-format.md lists them, read through Context's properties."""
    fields: dict[str, object] = {"dir": msg.direction.short, "kind": msg.kind.value}
    obj = msg.obj
    if "id" in obj:
        fields["id"] = obj["id"]
    method = obj.get("method") or ctx.method
    if method:
        fields["method"] = method
    tool = ctx.tool if ctx.request is not None else (msg.params.get("name") if method == "tools/call" else None)
    if isinstance(tool, str):
        fields["tool"] = tool
    if "error" in obj:
        fields["outcome"] = "failure"
    elif "result" in obj:
        result = obj["result"]
        fields["outcome"] = "failure" if isinstance(result, dict) and result.get("isError") is True else "success"
    if ctx.notes:
        fields["notes"] = ctx.notes
    return fields


@pytest.mark.parametrize(("raw", "direction", "request_raw"), [
    ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"refund \\"é\\u0001"}}', C2S, None),
    ('{"jsonrpc":"2.0","id":"a\\"b\\u00e9","method":"tools/list"}', C2S, None),
    ('{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":["name"]}', C2S, None),
    ('{"jsonrpc":"2.0","id":null,"method":5}', C2S, None),
    ('{"jsonrpc":"2.0","method":"","params":{"name":"x"}}', S2C, None),
    ('{"jsonrpc":"2.0","id":7,"result":{"isError":true}}', S2C, '{"jsonrpc":"2.0","id":7,"method":"tools/call",'
     '"params":{"name":"t"}}'),
    ('{"jsonrpc":"2.0","id":7,"result":{"isError":1}}', S2C, '{"jsonrpc":"2.0","id":7,"method":"tools/call",'
     '"params":{"name":3}}'),
    ('{"jsonrpc":"2.0","id":7,"result":[]}', S2C, '{"jsonrpc":"2.0","id":7,"method":"resources/read"}'),
    ('{"jsonrpc":"2.0","id":7,"method":"tools/call","result":{}}', S2C, '{"jsonrpc":"2.0","id":7,"method":7}'),
    ('{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"}}', S2C, '{"jsonrpc":"2.0","id":7,"method":"tools/call",'
     '"params":{"name":"t"}}'),
    ('{"jsonrpc":"2.0","id":7,"result":{}}', S2C, None),
])
async def test_message_members_are_the_documented_fields_as_json(raw: str, direction: Direction,
                                                                  request_raw: str | None, recorder: Recorder) -> None:
    # The recorder writes the members as JSON text itself; they must be the bytes json makes of the fields.
    from relay.transcript.format import dumps
    from tests.support.transcripts import bodies

    request = m(request_raw, direction.reverse) if request_raw is not None else None
    ctx = Context(direction, request=request, notes=[{"guard": "masking", "actions": []}] if request else [])
    msg = m(raw, direction)
    await recorder.intercept(msg, ctx)
    body = bodies(recorder.writer.path)[-1]
    expected = '"type":"message",' + dumps(_documented_members(msg, ctx))[1:-1] + ',"message":' + raw + "}"
    assert body.endswith(expected), (body, expected)


async def test_the_transcript_holds_exact_bytes(recorder: Recorder) -> None:
    raw = '{ "jsonrpc" : "2.0", "method":"n",\n  "params":{"b":1.10,"a":"\\ud83d\\ude00"} }'
    await Pipeline([recorder]).process(m(raw))
    assert records(recorder.writer.path)[1]["message"] == raw


async def test_batch_is_recorded_element_by_element(recorder: Recorder) -> None:
    p = Pipeline([recorder])
    await p.process(m('[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},'
                      '{"jsonrpc":"2.0","method":"notifications/x"}]'))
    recs = records(recorder.writer.path)[1:]
    assert [(r["kind"], r.get("tool")) for r in recs] == [("request", "a"), ("notification", None)]


async def test_notes_from_earlier_guards_are_recorded(recorder: Recorder) -> None:
    ctx = Context(C2S, notes=[{"guard": "masking", "action": "masked", "path": "params.arguments.pan"}])
    await recorder.intercept(m('{"jsonrpc":"2.0","method":"n"}'), ctx)
    assert records(recorder.writer.path)[1]["notes"] == ctx.notes


async def test_tool_of_a_request_comes_from_its_params(recorder: Recorder) -> None:
    await recorder.intercept(m('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}'), Context(C2S))
    await recorder.intercept(m('{"jsonrpc":"2.0","id":3,"method":"tools/call"}'), Context(C2S))
    recs = records(recorder.writer.path)[1:]
    assert recs[0]["tool"] == "x"
    assert "tool" not in recs[1]


async def test_intercept_returns_the_message_unchanged(recorder: Recorder) -> None:
    msg = m('{"jsonrpc":"2.0","method":"n"}')
    assert await recorder.intercept(msg, Context(C2S)) is msg


async def test_events_reach_the_transcript_through_report(recorder: Recorder) -> None:
    p = Pipeline([recorder])
    p.report({"event": "client_fault", "reason": "invalid JSON", "code": -32700})
    [rec] = records(recorder.writer.path)[1:]
    assert rec["type"] == "error"
    assert rec["event"] == "client_fault"
    assert rec["reason"] == "invalid JSON"
    assert rec["seq"] == 2


async def test_aclose_seals_and_is_idempotent(tmp_path: Path) -> None:
    rec = make(tmp_path, "s")
    await rec.aclose("upstream_failed")
    await rec.aclose()
    recs = records(rec.writer.path)
    assert [r["type"] for r in recs] == ["genesis", "seal"]
    assert recs[-1] | {"ts": None, "prev": None} == {"seq": 2, "ts": None, "prev": None, "type": "seal", "records": 2,
                                                    "reason": "upstream_failed"}
    assert not (tmp_path / ".open" / "s").exists()  # nothing left for crash recovery
    with pytest.raises(GuardError, match="closed"):
        await rec.intercept(m('{"jsonrpc":"2.0","method":"n"}'), Context(C2S))


# -- failing closed ---------------------------------------------------------------------------------------


async def test_write_failure_raises_guard_error(recorder: Recorder, dev_full: int) -> None:
    saved = fill_disk(recorder, dev_full)
    try:
        with pytest.raises(GuardError, match="cannot write transcript"):
            await recorder.intercept(m('{"jsonrpc":"2.0","method":"n"}'), Context(C2S))
        with pytest.raises(GuardError):
            recorder.on_event({"event": "x"})
    finally:
        free_disk(recorder, saved)


async def test_closed_descriptor_raises_guard_error(tmp_path: Path) -> None:
    rec = make(tmp_path, "s")
    assert rec.writer._fd is not None
    os.close(rec.writer._fd)  # pulled out from under the recorder
    with pytest.raises(GuardError, match="cannot write transcript"):
        await rec.intercept(m('{"jsonrpc":"2.0","method":"n"}'), Context(C2S))
    rec.writer._fd = None  # already closed; keep aclose from closing a number the OS may have reused


@pytest.mark.parametrize(("raw", "direction"), [
    ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund"}}', C2S),
    ('{"jsonrpc":"2.0","id":1,"result":{"pan":"4111111111111111"}}', S2C),
    ('{"jsonrpc":"2.0","method":"notifications/message"}', S2C),
])
async def test_an_unrecorded_message_is_not_forwarded(raw: str, direction: Direction, recorder: Recorder,
                                                      dev_full: int) -> None:
    p = Pipeline([recorder])
    msg = m(raw, direction)
    saved = fill_disk(recorder, dev_full)
    try:
        out = await p.process(msg)
    finally:
        free_disk(recorder, saved)
    if msg.kind is Kind.REQUEST:
        assert out.forward is None
        assert out.reply is not None
        assert out.reply.obj["error"]["code"] == GUARD_ERROR
        assert "No space left on device" in out.reply.obj["error"]["message"]  # the client learns why
        assert out.reply.direction is direction.reverse
    elif msg.kind is Kind.RESPONSE:
        assert out.forward is not None
        assert out.forward.kind is Kind.ERROR
        assert b"4111" not in out.forward.raw
    else:
        assert out.forward is None
        assert out.reply is None
    assert all(r["type"] == "genesis" for r in records(recorder.writer.path))


async def test_seq_stays_contiguous_after_a_failed_write(recorder: Recorder, dev_full: int) -> None:
    # A record that was never written must not leave a hole: a verifier reads a gap in seq as a deleted record.
    saved = fill_disk(recorder, dev_full)
    try:
        with pytest.raises(GuardError):
            await recorder.intercept(m('{"jsonrpc":"2.0","method":"lost"}'), Context(C2S))
    finally:
        free_disk(recorder, saved)
    await recorder.intercept(m('{"jsonrpc":"2.0","method":"kept"}'), Context(C2S))
    assert [r["seq"] for r in records(recorder.writer.path)] == [1, 2]


async def test_a_single_line_message_is_recorded_as_json_byte_for_byte(recorder: Recorder) -> None:
    raw = '{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":",\\"message\\":"},"x":1.10}'
    await Pipeline([recorder]).process(m(raw))
    line = recorder.writer.path.read_bytes().splitlines()[1]
    assert json.loads(line)["rec"]["message"]["error"]["message"] == ',"message":'  # a JSON value, not a string
    assert records(recorder.writer.path)[1]["message"] == raw


async def test_unsafe_continue_forwards_and_counts_the_gap(tmp_path: Path, dev_full: int) -> None:
    rec = make(tmp_path, "s", unsafe_continue=True)
    p = Pipeline([rec])
    saved = fill_disk(rec, dev_full)
    try:
        for _ in range(2):
            out = await p.process(m('{"jsonrpc":"2.0","method":"lost"}'))
            assert out.forward is not None  # the operator chose availability over the record
    finally:
        free_disk(rec, saved)
    await p.process(m('{"jsonrpc":"2.0","method":"kept"}'))
    await rec.aclose()
    recs = records(rec.writer.path)
    assert [(r["type"], r.get("event"), r.get("count"), r.get("method")) for r in recs[1:]] == [
        ("error", "unrecorded", 2, None), ("message", None, None, "kept"), ("seal", None, None, None)]


async def test_fsync_always_flushes_every_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = make(tmp_path, "s", fsync="always")
    flushed: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real(fd))[1])
    await rec.intercept(m('{"jsonrpc":"2.0","method":"n"}'), Context(C2S))
    assert flushed == [rec.writer._fd]
    await rec.aclose()


async def test_group_commit_flushes_within_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from relay.transcript.writer import SessionWriter, WriterOptions
    from tests.support.transcripts import SERVER

    key = Ed25519PrivateKey.generate()
    writer = SessionWriter(tmp_path, "s", SERVER, key, WriterOptions(fsync="interval", fsync_interval=0.01))
    flushed = anyio.Event()
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.set())
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run_group_commit)
        writer.write("message", {"dir": "c2s", "kind": "notification"}, b'{"jsonrpc":"2.0","method":"n"}')
        with anyio.fail_after(5):
            await flushed.wait()
        tg.cancel_scope.cancel()
    writer.seal("client_closed", key)


async def test_group_commit_sleeps_while_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from relay.transcript.writer import SessionWriter, WriterOptions
    from tests.support.transcripts import SERVER

    key = Ed25519PrivateKey.generate()
    writer = SessionWriter(tmp_path, "s", SERVER, key, WriterOptions(fsync="interval", fsync_interval=0.01))
    flushes: list[int] = []
    monkeypatch.setattr(os, "fsync", flushes.append)  # runs in a worker thread; list.append is atomic
    note = b'{"jsonrpc":"2.0","method":"n"}'
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run_group_commit)
        await anyio.sleep(0.1)  # ten intervals, nothing written: nothing to flush, and no flush
        assert flushes == []
        writer.write("message", {"dir": "c2s", "kind": "notification"}, note)
        writer.write("message", {"dir": "c2s", "kind": "notification"}, note)
        await anyio.sleep(0.15)
        assert len(flushes) == 1  # two records, one group commit, then asleep again
        writer.write("message", {"dir": "c2s", "kind": "notification"}, note)
        await anyio.sleep(0.15)
        assert len(flushes) == 2  # woken again by the write after the idle spell
        tg.cancel_scope.cancel()
    writer.seal("client_closed", key)


async def test_the_seal_and_the_open_are_in_the_ledger(tmp_path: Path) -> None:
    rec = make(tmp_path, "s")
    await rec.aclose()
    ledger = records(tmp_path / "ledger.jsonl")
    session = records(rec.writer.path)
    assert [(r["type"], r["session"]) for r in ledger] == [("open", "s"), ("seal", "s")]
    assert ledger[1]["records"] == 2 and ledger[0]["host_key"] == session[0]["host_key"]


async def test_a_tool_result_with_is_error_is_a_failure(recorder: Recorder) -> None:
    p = Pipeline([recorder])
    await p.process(m('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund"}}'))
    await p.process(m('{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}', S2C))
    answer = records(recorder.writer.path)[-1]
    assert (answer["tool"], answer["outcome"]) == ("refund", "failure")
