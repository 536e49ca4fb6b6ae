"""Shipping session transcripts to a collector (docs/collector-protocol.md).

The local session file is the spool: a cursor per session (`.ship/<session>.json` next to the files) says
what the collector has acknowledged, and shipping resumes from it. Shipping runs beside the data path and
never blocks it; `lag()` tells a `required` collector's caller when to fail closed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import anyio
import httpx

from relay import __version__
from relay.config import CollectorConfig
from relay.errors import ConfigError
from relay.paths import private_dir
from relay.transcript.format import ZERO_HASH, FormatError, parse_body, record_hash, split_line

log = logging.getLogger("relay.ship")

USER_AGENT = f"mcp-pci-relay/{__version__}"
NDJSON = "application/x-ndjson"
# A request stops growing past this size (one line may be larger on its own): a batch of big tool results
# should not become one request of hundreds of megabytes.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
LEDGER = "ledger.jsonl"


class _Failure(Exception):
    """A shipping attempt failed; retried with back-off. `str()` is safe to log (no secrets)."""


class _Stuck(_Failure):
    """Retrying soon cannot fix it: the collector holds a different record (a conflict), or the local file is
    damaged. Reported as an error; the cursor does not move past it."""


@dataclass(frozen=True)
class _Line:
    seq: int
    hash: str
    end: int  # byte offset just after this line's LF
    ack: bool  # an `ack` record: acknowledging only these must not trigger another ack record
    raw: bytes


@dataclass(frozen=True)
class ShipReport:
    """What `ship_backlog` did for one session file."""

    session: str
    shipped: int  # records sent in this run and acknowledged
    acked: int  # highest seq the collector acknowledged (0: none)
    error: str | None


class Shipper:
    """Ships one session file to the collector, from its cursor, in order, batch by batch.

    `on_ack(seq, head)` lets the caller record the acknowledgement as an `ack` record; it is called only
    when an acknowledgement covers a record that is not itself an `ack` (otherwise every ack record would be
    shipped, acknowledged, and recorded again, forever). It is also called from `drain()` after the seal,
    when the transcript takes no more records: the callback must then do nothing.
    """

    # Exponential back-off with full jitter: a fleet of relays behind one collector that comes back must not
    # retry in lockstep. Tests shorten these on an instance.
    backoff_base = 0.5
    backoff_cap = 30.0

    def __init__(self, config: CollectorConfig, path: Path, *,
                 on_ack: Callable[[int, str], None] | None = None) -> None:
        if not config.url:
            raise ConfigError("no collector is configured", hint="set collector.url")
        self.config = config
        self.url: str = config.url.rstrip("/")
        self.path = path
        self.session = path.stem
        self.on_ack = on_ack
        self.cursor_path = path.parent / ".ship" / f"{self.session}.json"
        self._records_url = f"{self.url}/v1/sessions/{quote(self.session, safe='')}/records"
        self._session_url = f"{self.url}/v1/sessions/{quote(self.session, safe='')}"
        self._where = _display(self.url)
        self.display_url = self._where
        # What the collector has acknowledged: seq, the record's hash, and where the next line starts.
        self.seq = 0
        self.head = ZERO_HASH
        self._offset = 0
        self._cursor_loaded = False
        self._cursor_valid = False
        self.shipped = 0
        self.error: str | None = None  # the last failure, None once shipping succeeds again
        # (offset, when first seen): every record ending by that offset has been waiting at least since then.
        self._seen: list[tuple[int, float]] = []
        self._lock: anyio.Lock | None = None

    # -- public ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Ship every `interval` until cancelled; failures back off and are logged, never raised."""
        failures = 0
        async with self._client() as client:
            while True:
                try:
                    await self._catch_up(client)
                except _Failure as exc:
                    failures += 1
                    self._report(exc, failures)
                    await anyio.sleep(self._backoff(failures))
                    continue
                if failures:
                    log.info("collector %s: shipping session %s again (acknowledged up to %d)",
                             self._where, self.session, self.seq)
                failures = 0
                self.error = None
                await anyio.sleep(self.config.interval)

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - a budget: False, not an exception
        """Ship every complete line of the file now, retrying within `timeout`. True if all are acknowledged."""
        failures = 0
        with anyio.move_on_after(timeout):
            async with self._client() as client:
                while True:
                    try:
                        await self._catch_up(client)
                    except _Stuck as exc:
                        self._report(exc, failures + 1)
                        return False
                    except _Failure as exc:
                        failures += 1
                        self._report(exc, failures)
                        await anyio.sleep(self._backoff(failures))
                        continue
                    self.error = None
                    return True
        if self.error is None:
            self.error = f"timed out after {timeout:g}s"
        else:
            self.error = f"timed out after {timeout:g}s: {self.error}"
        return False

    def lag(self) -> float:
        """Seconds the oldest unacknowledged complete record has been waiting (0.0 if none).

        Measured from when the shipper first saw the file hold it, so it lags the truth by at most one
        `interval`; it uses the monotonic clock, so a wall-clock step cannot fail a session closed.
        """
        for size, since in self._seen:
            if size > self._offset:
                return max(0.0, time.monotonic() - since)
        return 0.0

    # -- one round ---------------------------------------------------------------------------------------

    async def _catch_up(self, client: httpx.AsyncClient) -> None:
        """Send every complete line past the cursor, batch after batch; raises _Failure."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if not self._cursor_loaded:
                self._load_cursor()
            while True:
                batch, complete = await anyio.to_thread.run_sync(self._read_batch)
                self._observe(complete)
                if not batch:
                    return
                before = self.seq
                await self._post(client, batch)
                if self.seq <= before:
                    # A collector that acknowledges nothing new must not make this a busy loop.
                    raise _Failure(f"the collector acknowledged nothing new (it holds up to {self.seq})")

    def _read_batch(self) -> tuple[list[_Line], int]:
        """The next complete lines after the cursor (at most a batch), and how far the file holds complete
        lines as far as is known without reading it all. Blocking: run in a thread."""
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > self._offset:
                    # Ship only what is on disk, up to the size seen before the fsync: after a power loss
                    # the collector must not hold records the local file lost (the next start would write
                    # a different record at that seq).
                    os.fsync(f.fileno())
                if self._offset <= size:
                    f.seek(self._offset)
                    lines, problem = self._lines(f, self._offset, self.seq, self.head, size)
                    if lines or problem is None:
                        return lines, _complete_end(f, size, lines)  # a bad line further on is dealt with when it comes first
                    # The line after the cursor does not continue it: a stale cursor, or a damaged file?
                    found, _ = self._locate(self.seq)
                    if found == (self.seq, self.head, self._offset):
                        raise _Stuck(f"transcript {self.path.name} is damaged: {problem}")
                else:
                    problem = "the cursor is past the end of the file"
                self._reset_cursor(problem)
                f.seek(0)
                lines, problem = self._lines(f, 0, 0, ZERO_HASH, size)
                if not lines and problem is not None:
                    raise _Stuck(f"transcript {self.path.name} is damaged: {problem}")
                return lines, _complete_end(f, size, lines)
        except OSError as exc:
            raise _Failure(f"cannot read transcript {self.path.name}: {exc.strerror or exc}") from None

    def _lines(self, f: BinaryIO, offset: int, seq: int, head: str, limit: int) -> tuple[list[_Line], str | None]:
        """Complete lines from `f` (which is at `offset`), ending by `limit`, that continue record `seq` (hash
        `head`); and why it stopped early, if a line did not continue the chain."""
        out: list[_Line] = []
        total = 0
        while len(out) < self.config.batch_size and total < MAX_REQUEST_BYTES:
            raw = f.readline()
            if not raw.endswith(b"\n") or offset + len(raw) > limit:
                break  # end of file, or a line the writer has not finished: not a record yet
            try:
                seq, head, is_ack = _parse(raw, seq + 1, head)
            except _BadLine as exc:
                return out, str(exc)
            offset += len(raw)
            total += len(raw)
            out.append(_Line(seq, head, offset, is_ack, raw))
        return out, None

    async def _post(self, client: httpx.AsyncClient, batch: list[_Line]) -> None:
        headers = {"content-type": NDJSON, **self._auth()}
        body = b"".join(line.raw for line in batch)
        try:
            response = await client.post(self._records_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _Failure(f"cannot reach the collector ({_reason(exc)})") from None
        status = response.status_code
        if status == 200:
            seq, head = _state(response)
            await self._accept(seq, head, batch, sent=True)
            return
        info = _json(response)
        if status == 409:
            where = info.get("conflict")
            raise _Stuck(
                f"the collector holds a different record at seq {where if isinstance(where, int) else '?'}"
                f" of session {self.session} (it holds up to {info.get('seq', '?')}); the cursor stays at"
                f" {self.seq}")
        if status == 422:
            seq, head = _state(response)
            await self._accept(seq, head, batch, sent=False)
            # Back off even so: a collector that keeps answering with a gap must not make a busy loop.
            raise _Failure(f"the collector holds session {self.session} only up to seq {seq}; sending again"
                           " from there")
        if status in (401, 403):
            raise _Failure(f"the collector refused the credentials (HTTP {status})")
        detail = info.get("error")
        detail = f": {detail[:200]}" if isinstance(detail, str) else ""
        if status == 400:
            # The collector finds our records malformed or unverifiable: sending them again will not help.
            raise _Stuck(f"the collector refused records of session {self.session} (HTTP 400{detail})")
        raise _Failure(f"the collector answered HTTP {status}{detail}")

    async def _probe(self, client: httpx.AsyncClient) -> None:
        """Without a cursor, ask the collector what it holds, so a backlog it has is not sent again."""
        try:
            response = await client.get(self._session_url, headers=self._auth())
        except httpx.HTTPError as exc:
            raise _Failure(f"cannot reach the collector ({_reason(exc)})") from None
        if response.status_code == 404:
            return
        if response.status_code != 200:
            raise _Failure(f"the collector answered HTTP {response.status_code} to a status query")
        seq, head = _state(response)
        if seq > self.seq:
            await self._accept(seq, head, [], sent=False)

    # -- acknowledgements and the cursor -----------------------------------------------------------------

    async def _accept(self, seq: int, head: str, batch: list[_Line], *, sent: bool) -> None:
        """Move the cursor to what the collector says it holds, after checking that it is our record."""
        if seq == self.seq:
            if head != self.head:
                raise _Stuck(f"the collector's record {seq} of session {self.session} differs from the local one")
            return
        lines = [line for line in batch if self.seq < line.seq <= seq]
        if lines and lines[-1].seq == seq:
            found: tuple[int, str, int] | None = (seq, lines[-1].hash, lines[-1].end)
            covered_non_ack = any(not line.ack for line in lines)
        else:
            # Not in this batch: the collector holds less than our cursor (it lost data) or more than we
            # sent (another process shipped it). Find the record in the file.
            found, covered_non_ack = await anyio.to_thread.run_sync(self._locate, seq)
        if found is None:
            raise _Stuck(f"the collector holds session {self.session} up to seq {seq}, beyond the local file")
        if found[1] != head:
            raise _Stuck(f"the collector's record {seq} of session {self.session} differs from the local one")
        if seq < self.seq:
            log.warning("collector %s acknowledged session %s only up to seq %d, below the cursor (%d)",
                        self._where, self.session, seq, self.seq)
        elif sent:
            self.shipped += seq - self.seq
        self.seq, self.head, self._offset = seq, head, found[2]
        self._save_cursor()
        self._prune_seen()
        if covered_non_ack and self.on_ack is not None and seq > 0:
            try:
                self.on_ack(seq, head)
            except Exception as exc:
                # Recording the ack is best effort: the cursor holds it, and shipping must go on.
                log.warning("could not record the collector's acknowledgement of session %s: %s",
                            self.session, exc)

    def _locate(self, seq: int) -> tuple[tuple[int, str, int] | None, bool]:
        """(seq, hash, end offset) of record `seq` in the file (None if the file does not hold it yet), and
        whether the records after the cursor up to it include one that is not an `ack`. Blocking."""
        if seq == 0:
            return (0, ZERO_HASH, 0), False
        non_ack = False
        try:
            with open(self.path, "rb") as f:
                offset, prev, n = 0, ZERO_HASH, 0
                while True:
                    raw = f.readline()
                    if not raw.endswith(b"\n"):
                        return None, non_ack
                    try:
                        n, prev, is_ack = _parse(raw, n + 1, prev)
                    except _BadLine as exc:
                        raise _Stuck(f"transcript {self.path.name} is damaged: {exc}") from None
                    offset += len(raw)
                    if n > self.seq and not is_ack:
                        non_ack = True
                    if n == seq:
                        return (n, prev, offset), non_ack
        except OSError as exc:
            raise _Failure(f"cannot read transcript {self.path.name}: {exc.strerror or exc}") from None

    def _load_cursor(self) -> None:
        self._cursor_loaded = True
        try:
            data = json.loads(self.cursor_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring the shipping cursor of session %s: %s", self.session, exc)
            return
        seq, head, offset = data.get("seq"), data.get("head"), data.get("offset")
        if data.get("url") != self.url:
            return  # acknowledged by another collector: this one starts afresh
        if (type(seq) is not int or type(offset) is not int or seq < 0 or offset < 0
                or not isinstance(head, str) or len(head) != 64):
            log.warning("ignoring the shipping cursor of session %s: malformed", self.session)
            return
        # Checked when the next line is read: it must carry seq + 1 and chain to `head`.
        self.seq, self.head, self._offset = seq, head, offset
        self._cursor_valid = True

    def _reset_cursor(self, why: str) -> None:
        log.warning("shipping cursor of session %s does not match the file (%s); starting from seq 1",
                    self.session, why)
        self.seq, self.head, self._offset = 0, ZERO_HASH, 0
        self._cursor_valid = False

    def _save_cursor(self) -> None:
        data = json.dumps({"url": self.url, "seq": self.seq, "head": self.head, "offset": self._offset})
        try:
            directory = private_dir(self.cursor_path.parent)
            tmp = directory / f".{self.session}.json.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data.encode("ascii"))
            finally:
                os.close(fd)
            os.replace(tmp, self.cursor_path)
        except OSError as exc:
            # Without a cursor the next start sends again from seq 1, which the collector ignores: harmless.
            log.warning("cannot save the shipping cursor of session %s: %s", self.session, exc.strerror or exc)
        else:
            self._cursor_valid = True

    # -- helpers -----------------------------------------------------------------------------------------

    def _observe(self, end: int) -> None:
        """Note that complete records reach `end` now; `lag()` reads these notes."""
        if end > self._offset and (not self._seen or end > self._seen[-1][0]):
            self._seen.append((end, time.monotonic()))

    def _prune_seen(self) -> None:
        while self._seen and self._seen[0][0] <= self._offset:
            del self._seen[0]

    def _auth(self) -> dict[str, str]:
        name = self.config.bearer_env
        if not name:
            return {}
        token = os.environ.get(name)
        if not token:
            raise _Failure(f"the environment variable {name} (collector.auth.bearer_env) is not set")
        return {"authorization": f"Bearer {token}"}

    def _backoff(self, failures: int) -> float:
        return random.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2.0 ** min(failures, 32)))

    def _report(self, exc: _Failure, failures: int) -> None:
        message = str(exc)
        level = logging.ERROR if isinstance(exc, _Stuck) else logging.WARNING
        if message != self.error or failures == 1:
            log.log(level, "collector %s, session %s: %s", self._where, self.session, message)
        else:
            log.debug("collector %s, session %s: still failing (%d): %s", self._where, self.session,
                      failures, message)
        self.error = message

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        # No proxies or .netrc from the environment (like the data path), no redirects: a redirect would
        # carry the bearer token to wherever the collector points.
        client = httpx.AsyncClient(headers={"user-agent": USER_AGENT}, timeout=httpx.Timeout(30.0, connect=5.0),
                                   follow_redirects=False, trust_env=False)
        try:
            yield client
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await client.aclose()


def _complete_end(f: BinaryIO, size: int, lines: list[_Line]) -> int:
    """Where the complete lines of the file end: its size when it ends in LF (almost always: the writer
    writes a whole line at once), else the end of the lines read. Counting the records beyond this batch
    keeps `lag()` honest after an outage, when the collector has taken only the first batches back."""
    if size:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return size
    return lines[-1].end if lines else 0


class _BadLine(Exception):
    """A line does not continue the chain it should (wrong seq or prev), or is not a record."""


def _parse(raw: bytes, seq: int, prev: str) -> tuple[int, str, bool]:
    """(seq, hash, is_ack) of one complete line, checked to follow record `seq - 1` whose hash is `prev`."""
    try:
        body, sig = split_line(raw[:-1])
        rec = parse_body(body)
    except FormatError as exc:
        raise _BadLine(f"line {seq}: {exc}") from None
    if rec["seq"] != seq or rec["prev"] != prev:
        raise _BadLine(f"line {seq} does not continue the chain (seq {rec['seq']})")
    return seq, record_hash(body, sig)[1], rec["type"] == "ack"


def _state(response: httpx.Response) -> tuple[int, str]:
    info = _json(response)
    seq, head = info.get("seq"), info.get("head")
    if type(seq) is not int or seq < 0 or not isinstance(head, str) or len(head) != 64 or head.strip(
            "0123456789abcdef"):
        raise _Failure(f"the collector's answer (HTTP {response.status_code}) has no valid seq and head")
    return seq, head


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _display(url: str) -> str:
    """The collector's URL for log lines: without user info or query, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


async def ship_backlog(config: CollectorConfig, directory: Path, *, timeout: float = 60.0,  # noqa: ASYNC109
                       exclude: Collection[str] = ()) -> list[ShipReport]:
    """`relay transcripts ship`, and every recorded session's start: send every session file in `directory`
    (but the sessions in `exclude`, shipped by their own relay) from its cursor, within `timeout`."""
    if not config.url:
        raise ConfigError("no collector is configured", hint="set collector.url")
    reports: list[ShipReport] = []
    deadline = time.monotonic() + timeout
    paths = await anyio.to_thread.run_sync(_session_files, directory)
    for path in paths:
        if path.stem in exclude:
            continue
        shipper = Shipper(config, path)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reports.append(ShipReport(path.stem, 0, shipper.seq, f"not attempted: the {timeout:g}s limit was reached"))
            continue
        ok = await _drain_backlog(shipper, remaining)
        reports.append(ShipReport(path.stem, shipper.shipped, shipper.seq, None if ok else shipper.error))
    return reports


def _session_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.jsonl") if p.name != LEDGER and p.is_file())


async def _drain_backlog(shipper: Shipper, timeout: float) -> bool:  # noqa: ASYNC109
    # A backlog may be at the collector already (a lost cursor, a copy of the directory shipped from
    # elsewhere): ask first rather than send it again. A live session does not ask: a new one cannot be there.
    started = time.monotonic()
    shipper._load_cursor()
    if not shipper._cursor_valid:
        with anyio.move_on_after(timeout):
            async with shipper._client() as client:
                try:
                    await shipper._probe(client)
                except _Stuck as exc:
                    shipper._report(exc, 1)
                    return False
                except _Failure as exc:
                    shipper._report(exc, 1)  # drain() sends from the start, retrying with back-off
    return await shipper.drain(max(0.0, timeout - (time.monotonic() - started)))
