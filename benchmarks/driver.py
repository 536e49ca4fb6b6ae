"""Drive one stdio MCP bridge and measure its data path.

The driver spawns a bridge command (``<bridge> ... http://127.0.0.1:PORT/mcp``),
speaks newline-delimited JSON-RPC over its stdin/stdout exactly as an MCP host
would, and measures:

* **start-up**: from just before the spawn to the moment the answer to
  ``initialize`` (written at once after the spawn) has been read; the median
  over a few spawns, as one spawn is noisy;
* **small**: median, p90 and p99 round trip of N ``tools/call small``, after a
  warm-up, one call at a time;
* **rows**: median round trip of M ``tools/call rows`` (by default a ~110 KB result);
* **memory**: peak resident memory of the bridge's process tree, the sum of
  the RSS of the process and all its descendants, sampled from ``/proc``
  every few milliseconds by a background thread; the sum of the kernel's
  per-process high-water marks (``VmHWM``) is kept as a cross-check.

Round trips are timed with ``time.perf_counter_ns`` from just before the
request is written to the moment the newline ending the response has been
read.  The reader is a plain blocking ``os.read`` loop over one growing buffer,
and a line is JSON-decoded (to match it by id and check it) only after its
arrival time has been taken, so the driver's own parsing is not measured.

The direct-HTTP baseline (:func:`measure_direct`) times the same calls made
straight to the upstream with a persistent ``httpx.Client`` connection; it
reads a ``text/event-stream`` answer whole, then takes its ``message`` event.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

PROTOCOL_VERSION: Final = "2025-06-18"
CLIENT_INFO: Final = {"name": "relay-bench-driver", "version": "1.0.0"}
ROWS_COUNT: Final = 2000  # orders in ``rows`` (upstream --rows-count); masking may shorten one, never drop it
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")


class BridgeError(RuntimeError):
    """The bridge failed to start, died, or answered wrongly."""


@dataclass
class Result:
    """What one bridge (or the direct-HTTP baseline) measured, times in milliseconds."""

    name: str
    command: list[str]
    startup_ms: float | None
    small_median_ms: float
    small_p90_ms: float
    small_p99_ms: float
    small_mean_ms: float
    rows_median_ms: float
    rss_peak_mb: float | None
    rss_hwm_sum_mb: float | None
    calls: int
    rows_calls: int
    startup_samples_ms: list[float] = field(default_factory=list)
    small_samples_ms: list[float] = field(repr=False, default_factory=list)
    rows_samples_ms: list[float] = field(repr=False, default_factory=list)

    def to_json(self, samples: bool = False) -> dict[str, Any]:
        """The result as JSON-ready data, times rounded to 0.1 us; per-call samples on request."""
        data = asdict(self)
        if not samples:
            del data["small_samples_ms"], data["rows_samples_ms"]
        return {key: _rounded(value) for key, value in data.items()}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of ``samples`` by linear interpolation."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# --------------------------------------------------------------------------- memory of a process tree


def _ppid_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(name)] = int(fields[1])
    return parents


def process_tree(root: int) -> set[int]:
    """Return ``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    tree = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in tree:
                tree.add(child)
                stack.append(child)
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _hwm_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    return None


class MemorySampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped; keeps the peak.

    The tree is rediscovered every ``rescan_every`` samples (a scan of
    ``/proc``); in between only the known processes' ``statm`` is read.
    """

    def __init__(self, root: int, interval: float = 0.01, rescan_every: int = 10) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.root = root
        self.interval = interval
        self.rescan_every = rescan_every
        self.peak_bytes = 0
        self.hwm: dict[int, int] = {}
        self._pids: set[int] = {root}
        self._stop_event = threading.Event()

    def sample(self, rescan: bool = False) -> None:
        if rescan:
            self._pids = process_tree(self.root)
        self.peak_bytes = max(self.peak_bytes, sum(_rss_bytes(pid) for pid in self._pids))

    def record_hwm(self) -> None:
        """Read the per-process high-water marks of the tree as last scanned."""
        for pid in self._pids:
            hwm = _hwm_bytes(pid)
            if hwm is not None:
                self.hwm[pid] = max(hwm, self.hwm.get(pid, 0))

    def run(self) -> None:
        tick = 0
        while not self._stop_event.wait(self.interval):
            self.sample(rescan=tick % self.rescan_every == 0)
            if tick % self.rescan_every == 0:
                self.record_hwm()
            tick += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample(rescan=True)
        self.record_hwm()


# --------------------------------------------------------------------------- the stdio session


class StdioSession:
    """Newline-delimited JSON-RPC over a child's stdin/stdout, with a fast line reader."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.name = name
        self._wfd = proc.stdin.fileno()
        self._rfd = proc.stdout.fileno()
        self._poller = select.poll()
        self._poller.register(self._rfd, select.POLLIN)
        self._buf = bytearray()
        self._scan_from = 0
        self._next_id = 0
        self.unsolicited: list[Any] = []

    @staticmethod
    def encode(message: Mapping[str, Any]) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"

    def write(self, message: Mapping[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else self.encode(message)
        view = memoryview(data)
        while view:
            written = os.write(self._wfd, view)
            view = view[written:]

    def read_line(self, deadline: float) -> tuple[bytes, int]:
        """Return the next line and the ``perf_counter_ns`` at which its newline was read."""
        while True:
            end = self._buf.find(b"\n", self._scan_from)
            if end >= 0:
                now = time.perf_counter_ns()
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                self._scan_from = 0
                return line, now
            self._scan_from = len(self._buf)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BridgeError(f"{self.name}: timed out waiting for a response")
            if not self._poller.poll(remaining * 1000):
                continue
            chunk = os.read(self._rfd, 1 << 20)
            if not chunk:
                raise BridgeError(f"{self.name}: closed its stdout (exit code {self._exit_code()})")
            self._buf += chunk

    def _exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 30.0
    ) -> tuple[Any, int]:
        """Send one request; return its result and the round trip in nanoseconds."""
        request_id = self.new_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        data = self.encode(message)
        deadline = time.monotonic() + timeout
        start = time.perf_counter_ns()
        self.write(data)
        return self.wait_for(request_id, deadline, start)

    def wait_for(self, request_id: int, deadline: float, start: int) -> tuple[Any, int]:
        """Read lines until the response to ``request_id``; keep anything else aside."""
        while True:
            line, arrived = self.read_line(deadline)
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise BridgeError(f"{self.name}: wrote a line that is not JSON: {line[:200]!r}") from exc
            if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise BridgeError(f"{self.name}: request {request_id} failed: {message['error']}")
                return message.get("result"), arrived - start
            if isinstance(message, dict) and "method" in message and "id" in message:
                # A request from the bridge (e.g. roots/list): answer it so nothing stalls.
                self.write(
                    {
                        "jsonrpc": "2.0",
                        "id": message["id"],
                        "error": {"code": -32601, "message": "not supported"},
                    }
                )
            self.unsolicited.append(message)


def _check_small(result: Any) -> None:
    if not (isinstance(result, dict) and result.get("content") and not result.get("isError")):
        raise BridgeError(f"unexpected small result: {str(result)[:200]}")


def _check_rows(result: Any, expected: int = ROWS_COUNT) -> None:
    """Check that a ``rows`` result of any shape (``upstream.ROWS_SHAPES``) holds ``expected`` orders."""
    try:
        content = result["content"]
        if "structuredContent" in result:
            count = len(result["structuredContent"]["rows"])
        elif len(content) > 1:  # one item per line, the header first
            count = sum(1 for item in content if isinstance(item["text"], str)) - 1
        else:  # CSV: a header line, then one line per order, each ending in a newline
            count = content[0]["text"].count("\n") - 1
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BridgeError(f"unexpected rows result: {str(result)[:200]}") from exc
    if count < expected:
        raise BridgeError(f"rows result truncated: {count} orders of {expected}")


def decode_http_reply(response: Any) -> Any:
    """The JSON-RPC message in an ``httpx`` response, whether JSON or SSE (the last ``message`` event)."""
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return response.json()
    message = None
    for event in response.text.replace("\r\n", "\n").split("\n\n"):
        kind, data = "message", []
        for line in event.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
        if data and kind == "message" and "".join(data).strip():
            message = json.loads("\n".join(data))
    if message is None:
        raise BridgeError("direct: an SSE response without a message")
    return message


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close stdin and let the bridge exit; then signal its process group, then kill it."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=3)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)  # the bridge leads its own group (start_new_session)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


class _Bridge:
    """One spawned bridge: its process, its stdio session and its memory sampler."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        scratch: Path,
    ) -> None:
        self.name = name
        self.stderr_path = scratch / f"stderr-{time.monotonic_ns()}.log"
        with open(self.stderr_path, "wb") as stderr:
            self.spawned_ns = time.perf_counter_ns()
            try:
                self.proc = subprocess.Popen(
                    list(command),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    start_new_session=True,
                    bufsize=0,
                )
            except OSError as exc:
                raise BridgeError(f"{name}: cannot start {command[0]!r}: {exc}") from exc
        self.sampler = MemorySampler(self.proc.pid)
        self.sampler.start()
        self.session = StdioSession(self.proc, name)

    def initialize(self, timeout: float) -> float:
        """Send ``initialize`` and return the milliseconds from spawn to its answer."""
        init_id = self.session.new_id()
        params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
        self.session.write({"jsonrpc": "2.0", "id": init_id, "method": "initialize", "params": params})
        result, elapsed_ns = self.session.wait_for(init_id, time.monotonic() + timeout, self.spawned_ns)
        if not isinstance(result, dict) or "protocolVersion" not in result:
            raise BridgeError(f"{self.name}: unexpected initialize result: {result!r}")
        self.session.write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return elapsed_ns / 1e6

    def explain(self, exc: BaseException) -> BridgeError:
        """Wrap ``exc`` with the tail of the bridge's stderr."""
        detail = _tail(self.stderr_path)
        message = str(exc) if isinstance(exc, BridgeError) else f"{self.name}: {exc}"
        return BridgeError(message + (f"\n--- {self.name} stderr ---\n{detail}" if detail else ""))

    def close(self) -> None:
        self.sampler.stop()
        _stop(self.proc)


def measure_bridge(
    name: str,
    command: Sequence[str],
    *,
    calls: int = 1000,
    rows_calls: int = 30,
    warmup: int = 100,
    rows_expected: int = ROWS_COUNT,
    startup_runs: int = 5,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    startup_timeout: float = 30.0,
) -> Result:
    """Spawn ``command`` and measure it; raise :class:`BridgeError` if it misbehaves.

    Start-up is the median over ``startup_runs`` spawns: ``startup_runs - 1``
    that only initialize and exit, then the one that goes on to the calls.
    """
    startup_ms: list[float] = []
    small_ms: list[float] = []
    rows_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        for run in range(max(startup_runs, 1)):
            bridge = _Bridge(name, command, env, cwd, Path(tmp))
            try:
                startup_ms.append(bridge.initialize(startup_timeout))
                if run < startup_runs - 1:
                    continue
                small_ms, rows_ms = _exercise(bridge.session, calls, rows_calls, warmup, rows_expected)
            except (BridgeError, OSError) as exc:
                raise bridge.explain(exc) from exc
            finally:
                bridge.close()

    return _summarise(
        name,
        list(command),
        startup_ms=startup_ms,
        small_ms=small_ms,
        rows_ms=rows_ms,
        rss_peak_mb=bridge.sampler.peak_bytes / 2**20,
        rss_hwm_sum_mb=sum(bridge.sampler.hwm.values()) / 2**20,
    )


def _exercise(
    session: StdioSession, calls: int, rows_calls: int, warmup: int, rows_expected: int = ROWS_COUNT
) -> tuple[list[float], list[float]]:
    """Check the tools, warm up, then time ``calls`` small and ``rows_calls`` rows calls (ms)."""
    tools, _ = session.request("tools/list")
    names = {tool.get("name") for tool in (tools or {}).get("tools", [])}
    if not {"small", "rows"} <= names:
        raise BridgeError(f"{session.name}: tools/list lacks small/rows: {sorted(map(str, names))}")

    small_params = {"name": "small", "arguments": {"text": "hello"}}
    rows_params: dict[str, Any] = {"name": "rows", "arguments": {}}
    for _ in range(warmup):
        _check_small(session.request("tools/call", small_params)[0])
    for _ in range(3):
        _check_rows(session.request("tools/call", rows_params)[0], rows_expected)

    small_ns: list[int] = []
    for _ in range(calls):
        result, elapsed = session.request("tools/call", small_params)
        small_ns.append(elapsed)
        _check_small(result)
    rows_ns: list[int] = []
    for _ in range(rows_calls):
        result, elapsed = session.request("tools/call", rows_params)
        rows_ns.append(elapsed)
        _check_rows(result, rows_expected)
    return [ns / 1e6 for ns in small_ns], [ns / 1e6 for ns in rows_ns]


def _summarise(
    name: str,
    command: list[str],
    *,
    startup_ms: list[float],
    small_ms: list[float],
    rows_ms: list[float],
    rss_peak_mb: float | None,
    rss_hwm_sum_mb: float | None,
) -> Result:
    return Result(
        name=name,
        command=command,
        startup_ms=percentile(startup_ms, 50) if startup_ms else None,
        small_median_ms=percentile(small_ms, 50),
        small_p90_ms=percentile(small_ms, 90),
        small_p99_ms=percentile(small_ms, 99),
        small_mean_ms=sum(small_ms) / len(small_ms),
        rows_median_ms=percentile(rows_ms, 50),
        rss_peak_mb=rss_peak_mb,
        rss_hwm_sum_mb=rss_hwm_sum_mb,
        calls=len(small_ms),
        rows_calls=len(rows_ms),
        startup_samples_ms=startup_ms,
        small_samples_ms=small_ms,
        rows_samples_ms=rows_ms,
    )


def pool(results: Sequence[Result]) -> Result:
    """Merge several rounds of one bridge: samples pooled, peak memory the highest seen."""
    if not results:
        raise ValueError("no results")

    def highest(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    return _summarise(
        results[0].name,
        results[0].command,
        startup_ms=[x for r in results for x in r.startup_samples_ms],
        small_ms=[x for r in results for x in r.small_samples_ms],
        rows_ms=[x for r in results for x in r.rows_samples_ms],
        rss_peak_mb=highest([r.rss_peak_mb for r in results]),
        rss_hwm_sum_mb=highest([r.rss_hwm_sum_mb for r in results]),
    )


# --------------------------------------------------------------------------- direct-HTTP baseline


def measure_direct(
    url: str, *, calls: int = 1000, rows_calls: int = 30, warmup: int = 100, rows_expected: int = ROWS_COUNT
) -> Result:
    """Time the same calls made straight to the upstream over one persistent HTTP connection."""
    import httpx

    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with httpx.Client(headers=headers, timeout=30.0) as client:
        counter = 0

        def post(method: str, params: Mapping[str, Any] | None = None) -> tuple[Any, int]:
            nonlocal counter
            counter += 1
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": counter, "method": method}
            if params is not None:
                message["params"] = params
            body = json.dumps(message, separators=(",", ":")).encode()
            start = time.perf_counter_ns()
            response = client.post(url, content=body)
            elapsed = time.perf_counter_ns() - start
            response.raise_for_status()
            if response.status_code == 202:
                return None, elapsed
            reply = decode_http_reply(response)
            if "error" in reply:
                raise BridgeError(f"direct: {method} failed: {reply['error']}")
            return reply["result"], elapsed

        init_params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
        response = client.post(
            url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init_params}
        )
        response.raise_for_status()
        client.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        client.headers["mcp-protocol-version"] = decode_http_reply(response)["result"]["protocolVersion"]
        client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}).raise_for_status()

        small_params = {"name": "small", "arguments": {"text": "hello"}}
        rows_params: dict[str, Any] = {"name": "rows", "arguments": {}}
        for _ in range(warmup):
            _check_small(post("tools/call", small_params)[0])
        for _ in range(3):
            _check_rows(post("tools/call", rows_params)[0], rows_expected)
        small_ns = []
        for _ in range(calls):
            result, elapsed = post("tools/call", small_params)
            small_ns.append(elapsed)
            _check_small(result)
        rows_ns = []
        for _ in range(rows_calls):
            result, elapsed = post("tools/call", rows_params)
            rows_ns.append(elapsed)
            _check_rows(result, rows_expected)
        client.delete(url)

    return _summarise(
        "direct-http",
        ["httpx.Client", url],
        startup_ms=[],
        small_ms=[ns / 1e6 for ns in small_ns],
        rows_ms=[ns / 1e6 for ns in rows_ns],
        rss_peak_mb=None,
        rss_hwm_sum_mb=None,
    )
