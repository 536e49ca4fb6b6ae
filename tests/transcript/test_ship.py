"""relay.transcript.ship against a real HTTP collector on loopback (tests/support/collector.py)."""

from __future__ import annotations

import json
import logging
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.config import CollectorConfig
from relay.transcript.format import build_body, record_hash, seal_line, split_line
from relay.transcript.ship import Shipper, ship_backlog
from relay.transcript.writer import SessionWriter
from tests.support.collector import Collector, running_collector

pytestmark = pytest.mark.anyio

SERVER = {"name": "srv", "transport": "stdio", "command": "srv"}
SESSION = "20260101T000000Z-5e551011"
TOKEN = "collector-token-Zq8xW3vR5tY7"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with running_collector() as c:
        yield c


@pytest.fixture
def ship_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Log records of relay.ship, even when an earlier test set relay's logger not to propagate."""
    logger = logging.getLogger("relay.ship")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old)


def config(collector: Collector, *, batch_size: int = 100, bearer_env: str | None = None) -> CollectorConfig:
    return CollectorConfig(url=collector.url, bearer_env=bearer_env, batch_size=batch_size, interval=0.05)


def fast(shipper: Shipper) -> Shipper:
    shipper.backoff_base, shipper.backoff_cap = 0.02, 0.1
    return shipper


def session(directory: Path, name: str = SESSION, messages: int = 0) -> tuple[SessionWriter, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    writer = SessionWriter(directory, name, SERVER, key)
    for _ in range(messages):
        message(writer)
    return writer, key


def message(writer: SessionWriter) -> None:
    n = writer.seq
    writer.write("message", {"dir": "c2s", "kind": "request", "id": n, "method": "tools/list"},
                 f'{{"jsonrpc":"2.0","id":{n},"method":"tools/list"}}'.encode())


def sealed(directory: Path, name: str = SESSION, messages: int = 3) -> Path:
    writer, key = session(directory, name, messages)
    writer.seal("client_closed", key)
    return writer.path


def file_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def types(path: Path) -> list[str]:
    return [json.loads(line)["rec"]["type"] for line in file_lines(path)]


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - the shipper's state is plain attributes, on purpose
            await anyio.sleep(0.01)


def exactly_once(collector: Collector, name: str, count: int) -> None:
    keys = [(name, seq) for seq in range(1, count + 1)]
    assert [collector.stored[k] for k in keys] == [1] * count
    assert [collector.received[k] for k in keys] == [1] * count
    assert sorted(k for k in collector.stored if k[0] == name) == keys


async def test_ships_records_and_records_the_acknowledgement(tmp_path: Path, collector: Collector) -> None:
    writer, key = session(tmp_path)
    acks: list[tuple[int, str]] = []

    def on_ack(seq: int, head: str) -> None:
        acks.append((seq, head))
        if not writer.closed:
            # Not "seq": a body member of that name would repeat the record's own (a duplicate key).
            writer.write("ack", {"collector": collector.url, "acked": seq, "head": head})

    shipper = Shipper(config(collector, batch_size=3), writer.path, on_ack=on_ack)
    async with anyio.create_task_group() as tg:
        tg.start_soon(shipper.run)
        for _ in range(7):
            message(writer)
        await until(lambda: shipper.seq == writer.seq and bool(acks))
        # The ack record is shipped and acknowledged too, but acknowledging only an ack records nothing new.
        await anyio.sleep(0.3)
        assert shipper.seq == writer.seq
        assert types(writer.path).count("ack") == len(acks)
        assert types(writer.path)[-1] == "ack"
        recorded = json.loads(file_lines(writer.path)[-1])["rec"]
        assert (recorded["acked"], recorded["head"]) == acks[-1]
        writer.seal("client_closed", key)
        tg.cancel_scope.cancel()
    assert await shipper.drain(5)
    assert collector.lines(SESSION) == file_lines(writer.path)
    assert shipper.lag() == 0.0
    assert shipper.error is None
    cursor = tmp_path / ".ship" / f"{SESSION}.json"
    assert stat.S_IMODE(cursor.stat().st_mode) == 0o600
    assert stat.S_IMODE(cursor.parent.stat().st_mode) == 0o700
    assert json.loads(cursor.read_text())["seq"] == writer.seq


async def test_a_new_shipper_resumes_from_the_cursor(tmp_path: Path, collector: Collector) -> None:
    writer, key = session(tmp_path, messages=2)
    first = Shipper(config(collector), writer.path)
    assert await first.drain(5)
    assert first.seq == 3
    for _ in range(3):
        message(writer)
    writer.seal("client_closed", key)
    second = Shipper(config(collector), writer.path)
    assert await second.drain(5)
    assert (second.seq, second.shipped) == (7, 4)
    exactly_once(collector, SESSION, 7)
    assert collector.lines(SESSION) == file_lines(writer.path)
    assert [r.method for r in collector.requests] == ["POST", "POST"]


async def test_collector_down_for_the_whole_session_then_back(tmp_path: Path) -> None:
    collector = Collector()
    collector.start()
    collector.stop()  # its port is known; nothing listens on it
    writer, key = session(tmp_path)
    acks: list[int] = []
    shipper = fast(Shipper(config(collector, batch_size=7), writer.path, on_ack=lambda s, h: acks.append(s)))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(shipper.run)
            for i in range(40):
                message(writer)
                if i % 10 == 0:
                    await anyio.sleep(0.05)
            writer.seal("client_closed", key)
            await until(lambda: shipper.error is not None and shipper.lag() > 0.2)
            assert shipper.error is not None and "cannot reach the collector" in shipper.error
            assert shipper.seq == 0
            collector.start()
            await until(lambda: shipper.seq == writer.seq)
            tg.cancel_scope.cancel()
        assert collector.lines(SESSION) == file_lines(writer.path)
        exactly_once(collector, SESSION, writer.seq)
        assert acks[-1] == writer.seq
        assert shipper.lag() == 0.0
        assert shipper.error is None
    finally:
        collector.stop()


async def test_lag_grows_while_the_collector_is_down(tmp_path: Path) -> None:
    collector = Collector()
    collector.start()
    collector.stop()
    writer, key = session(tmp_path, messages=3)
    shipper = fast(Shipper(config(collector), writer.path))
    assert shipper.lag() == 0.0
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(shipper.run)
            await until(lambda: shipper.lag() > 0.0)
            first = shipper.lag()
            await anyio.sleep(0.2)
            assert shipper.lag() >= first + 0.15
            collector.start()
            await until(lambda: shipper.seq == writer.seq)
            assert shipper.lag() == 0.0
            message(writer)  # a new record waits only from when it was seen, not since the outage
            await until(lambda: shipper.seq == writer.seq)
            assert shipper.lag() == 0.0
            tg.cancel_scope.cancel()
    finally:
        collector.stop()
        writer.seal("client_closed", key)


async def test_lag_counts_the_backlog_not_just_the_batch_in_flight(tmp_path: Path) -> None:
    collector = Collector()
    collector.start()
    collector.stop()
    writer, key = session(tmp_path, messages=20)
    shipper = fast(Shipper(config(collector, batch_size=5), writer.path))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(shipper.run)
            await until(lambda: shipper.lag() > 0.3)
            collector.unavailable_after = 1  # takes one batch back, then fails
            collector.start()
            await until(lambda: shipper.seq == 5 and shipper.error is not None and "HTTP 503" in shipper.error)
            assert shipper.lag() > 0.3  # records 6.. have waited since the outage too
            collector.unavailable_after = None
            await until(lambda: shipper.seq == writer.seq)
            assert shipper.lag() == 0.0
            tg.cancel_scope.cancel()
    finally:
        collector.stop()
        writer.seal("client_closed", key)


async def test_a_conflict_is_reported_and_the_cursor_stays(tmp_path: Path, collector: Collector,
                                                           ship_log: pytest.LogCaptureFixture) -> None:
    # Two different sessions under one id: the collector holds the first, the second must not pass for it.
    theirs = sealed(tmp_path / "a", messages=4)
    assert await Shipper(config(collector), theirs).drain(5)
    ours = sealed(tmp_path / "b", messages=4)
    shipper = fast(Shipper(config(collector), ours))
    assert not await shipper.drain(5)
    assert shipper.error is not None and "different record at seq 1" in shipper.error
    assert shipper.seq == 0
    assert not (ours.parent / ".ship").exists()
    errors = [r for r in ship_log.records if r.levelno == logging.ERROR]
    assert errors and "different record at seq 1" in errors[0].getMessage()
    assert collector.lines(SESSION) == file_lines(theirs)
    # The same through the backlog command, which first asks the collector what it holds.
    [report] = await ship_backlog(config(collector), ours.parent, timeout=5)
    assert report.session == SESSION and report.acked == 0 and report.shipped == 0
    assert report.error is not None and "differs from the local one" in report.error
    assert not (ours.parent / ".ship").exists()


async def test_records_the_collector_cannot_verify_are_reported(tmp_path: Path, collector: Collector) -> None:
    path = sealed(tmp_path, messages=2)
    lines = file_lines(path)
    # The seal replaced by a record chained correctly but signed by a stranger: the chain holds, the
    # signature does not, and only the collector checks signatures.
    body, sig = split_line(lines[-2][:-1])
    forged, _ = seal_line(build_body(len(lines), record_hash(body, sig)[1], "seal", {"records": len(lines),
                                                                                  "reason": "client_closed"}),
                          Ed25519PrivateKey.generate().sign)
    path.write_bytes(b"".join(lines[:-1]) + forged)
    shipper = fast(Shipper(config(collector), path))
    assert not await shipper.drain(5)
    assert shipper.error is not None and "HTTP 400" in shipper.error and "bad signature" in shipper.error
    assert shipper.seq == 0 and collector.lines(SESSION) == []


async def test_the_bearer_token_is_sent_and_never_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         ship_log: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-token-Kd82hHs0Pq1"
    monkeypatch.setenv("COLLECTOR_TOKEN", TOKEN)
    monkeypatch.setenv("OTHER_TOKEN", wrong)
    monkeypatch.delenv("UNSET_TOKEN", raising=False)
    path = sealed(tmp_path)
    with running_collector(token=TOKEN) as collector:
        refused = fast(Shipper(config(collector, bearer_env="OTHER_TOKEN"), path))
        assert not await refused.drain(0.5)
        assert refused.error is not None and "HTTP 401" in refused.error
        unset = fast(Shipper(config(collector, bearer_env="UNSET_TOKEN"), path))
        assert not await unset.drain(0.3)
        assert unset.error is not None and "UNSET_TOKEN" in unset.error
        shipper = Shipper(config(collector, bearer_env="COLLECTOR_TOKEN"), path)
        assert await shipper.drain(5)
        assert collector.lines(SESSION) == file_lines(path)
        seen = {r.headers.get("authorization") for r in collector.requests}
        assert seen == {f"Bearer {wrong}", f"Bearer {TOKEN}"}
    assert any("HTTP 401" in r.getMessage() for r in ship_log.records)
    assert any("UNSET_TOKEN" in r.getMessage() for r in ship_log.records)
    assert TOKEN not in ship_log.text and wrong not in ship_log.text
    for r in ship_log.records:
        assert TOKEN not in r.getMessage() and wrong not in r.getMessage()
    assert TOKEN not in (tmp_path / ".ship" / f"{SESSION}.json").read_text()


async def test_an_incomplete_last_line_is_not_shipped(tmp_path: Path, collector: Collector) -> None:
    whole = file_lines(sealed(tmp_path / "whole", messages=3))
    path = tmp_path / "torn" / f"{SESSION}.jsonl"
    path.parent.mkdir()
    last = whole[-1]
    path.write_bytes(b"".join(whole[:-1]) + last[: len(last) // 2])
    shipper = Shipper(config(collector), path)
    assert await shipper.drain(5)
    assert collector.lines(SESSION) == whole[:-1]
    assert shipper.lag() == 0.0
    # The writer finishes the line: now it is a record, and it is shipped once.
    with path.open("ab") as f:
        f.write(last[len(last) // 2:])
    assert await shipper.drain(5)
    assert collector.lines(SESSION) == whole
    exactly_once(collector, SESSION, len(whole))


async def test_a_collector_that_lost_records_gets_them_again(tmp_path: Path, collector: Collector) -> None:
    writer, key = session(tmp_path, messages=3)
    shipper = fast(Shipper(config(collector), writer.path))
    assert await shipper.drain(5)
    collector.forget(SESSION)
    message(writer)
    writer.seal("client_closed", key)
    assert await shipper.drain(5)
    assert collector.lines(SESSION) == file_lines(writer.path)
    assert any(r.status == 422 for r in collector.requests)


async def test_ship_backlog_drains_every_session_from_its_cursor(tmp_path: Path, collector: Collector) -> None:
    names = ["20260101T000000Z-00000001", "20260101T000000Z-00000002", "20260101T000000Z-00000003"]
    key = Ed25519PrivateKey.generate()
    for i, name in enumerate(names):
        writer = SessionWriter(tmp_path, name, SERVER, key)
        for _ in range(3 + 30 * i):
            message(writer)
        if i == 1:  # shipped in part by the session itself, before it ended
            assert await Shipper(config(collector), writer.path).drain(5)
            message(writer)
        writer.seal("client_closed", key)
    assert (tmp_path / "ledger.jsonl").exists()
    reports = await ship_backlog(config(collector, batch_size=10), tmp_path, timeout=10)
    assert [r.session for r in reports] == names
    assert [r.error for r in reports] == [None, None, None]
    assert [r.acked for r in reports] == [5, 36, 65]
    assert [r.shipped for r in reports] == [5, 2, 65]
    for name, report in zip(names, reports, strict=True):
        assert collector.lines(name) == file_lines(tmp_path / f"{name}.jsonl")
        exactly_once(collector, name, report.acked)
    # Without cursors, the command asks the collector and sends nothing it already holds.
    shutil.rmtree(tmp_path / ".ship")
    posts = sum(r.method == "POST" for r in collector.requests)
    again = await ship_backlog(config(collector), tmp_path, timeout=10)
    assert [(r.shipped, r.acked, r.error) for r in again] == [(0, 5, None), (0, 36, None), (0, 65, None)]
    assert sum(r.method == "POST" for r in collector.requests) == posts


async def test_ship_backlog_reports_a_collector_that_is_down(tmp_path: Path) -> None:
    collector = Collector()
    collector.start()
    collector.stop()
    sealed(tmp_path)
    [report] = await ship_backlog(config(collector), tmp_path, timeout=0.5)
    assert report.acked == 0 and report.error is not None
    assert "timed out" in report.error and "cannot reach the collector" in report.error
