"""Compare relay's data path with its peers, mcp-remote and mcp-proxy.

Usage::

    python benchmarks/run.py [--calls N] [--rows-calls M] [--rounds R] [--warmup W]
                             [--only relay,mcp-remote,mcp-proxy] [--json results.json] [--check]

One run starts one upstream (``benchmarks/upstream.py``), installs the peers if
needed (``benchmarks/peers.py``), then, for each of R rounds, times the
direct-HTTP baseline and drives each bridge over stdio with the same client
(``benchmarks/driver.py``) against that same upstream, each bridge spawned
afresh, in an order rotated every round.  The samples of all rounds are pooled
(peak memory: the highest round).  The warm-up is long on purpose: V8's JIT
keeps speeding mcp-remote up for several hundred calls, and a short warm-up
would flatter relay.  A bridge that fails to start or answers wrongly is
skipped with its reason; the others still run.

It prints one table (start-up, small-call median/p90/p99, rows median, peak
RSS), relay's ratio to the faster peer on each metric, and relay against the
targets:

* small-call median <= 0.7 x the faster peer's;
* rows median <= 0.1 x the faster peer's;
* start-up <= 300 ms;
* peak RSS <= 60 MB.

``--check`` makes the exit status 1 when relay missed a target or, asked
for, could not be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))

import driver
import peers

UPSTREAM: Final = Path(__file__).resolve().parent / "upstream.py"

# (key, column title, unit format)
METRICS: Final = (
    ("startup_ms", "start-up ms", "{:.0f}"),
    ("small_median_ms", "small p50 ms", "{:.3f}"),
    ("small_p90_ms", "small p90 ms", "{:.3f}"),
    ("small_p99_ms", "small p99 ms", "{:.3f}"),
    ("rows_median_ms", "rows p50 ms", "{:.2f}"),
    ("rss_peak_mb", "RSS MB", "{:.1f}"),
)


@dataclass(frozen=True)
class Target:
    """One goal for relay: a bound on a metric, relative to the faster peer or absolute."""

    metric: str
    bound: float
    relative: bool

    def describe(self) -> str:
        title = dict((key, title) for key, title, _ in METRICS)[self.metric]
        return f"{title} <= {self.bound:g}x faster peer" if self.relative else f"{title} <= {self.bound:g}"


TARGETS: Final = (
    Target("small_median_ms", 0.7, relative=True),
    Target("rows_median_ms", 0.1, relative=True),
    Target("startup_ms", 300.0, relative=False),
    Target("rss_peak_mb", 60.0, relative=False),
)


class Upstream:
    """The benchmark's upstream server, in its own process."""

    def __init__(self, server: str = "raw", timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(UPSTREAM), "--port", "0", "--server", server, "--exit-with-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while not line.startswith("READY "):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.proc.stdout], [], [], remaining)[0]:
                break
            line = self.proc.stdout.readline()
            if not line:  # it exited
                break
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError("the upstream did not start")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/mcp"

    def close(self) -> None:
        """Stop the upstream: closing its stdin asks it to exit; a signal follows if it lingers."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def render_table(results: Sequence[driver.Result]) -> str:
    rows = [["bridge", *(title for _, title, _ in METRICS)]]
    for result in results:
        data = result.to_json()
        rows.append([result.name, *(_fmt(data[key], pattern) for key, _, pattern in METRICS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratios(relay: driver.Result, peer_results: Sequence[driver.Result]) -> dict[str, dict[str, Any]]:
    """Relay's value over the faster (lower) peer's value, per metric."""
    out: dict[str, dict[str, Any]] = {}
    relay_data = relay.to_json()
    for key, _, _ in METRICS:
        candidates = [(r.to_json()[key], r.name) for r in peer_results if r.to_json()[key] is not None]
        if relay_data[key] is None or not candidates:
            continue
        best, best_name = min(candidates)
        out[key] = {
            "relay": relay_data[key],
            "faster_peer": best_name,
            "peer": best,
            "ratio": relay_data[key] / best if best else None,
        }
    return out


def check_targets(relay: driver.Result, relay_ratios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluate each target; a relative one needs at least one peer measured."""
    verdicts = []
    for target in TARGETS:
        value = (
            relay_ratios.get(target.metric, {}).get("ratio")
            if target.relative
            else relay.to_json()[target.metric]
        )
        verdicts.append(
            {
                "target": target.describe(),
                "metric": target.metric,
                "bound": target.bound,
                "relative": target.relative,
                "value": value,
                "met": None if value is None else value <= target.bound,
            }
        )
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare relay with mcp-remote and mcp-proxy on one upstream."
    )
    parser.add_argument("--rounds", type=int, default=3, help="fresh spawns of every bridge (default 3)")
    parser.add_argument("--calls", type=int, default=1000, help="timed small calls per round (default 1000)")
    parser.add_argument("--rows-calls", type=int, default=30, help="timed rows calls per round (default 30)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed small calls first (default 500)")
    parser.add_argument("--startup-runs", type=int, default=3, help="timed start-ups per round (default 3)")
    parser.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds to wait for initialize (default 30)"
    )
    parser.add_argument(
        "--only", default=",".join(peers.BRIDGES), help="comma-separated bridges (default: all)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--samples", action="store_true", help="include every round trip in the JSON")
    parser.add_argument(
        "--upstream-server", choices=("raw", "asgi"), default="raw", help="upstream implementation"
    )
    parser.add_argument("--no-setup", action="store_true", help="do not install missing peers")
    parser.add_argument("--check", action="store_true", help="exit 1 when relay misses a target")
    args = parser.parse_args(argv)
    if min(args.rounds, args.calls, args.rows_calls, args.startup_runs) < 1 or args.warmup < 0:
        parser.error("--rounds, --calls, --rows-calls and --startup-runs must be at least 1")

    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in peers.BRIDGES]
    if unknown:
        parser.error(f"unknown bridge(s) {', '.join(unknown)}; choose from {', '.join(peers.BRIDGES)}")

    skipped: dict[str, str] = {} if args.no_setup else peers.setup(names)
    for name, reason in skipped.items():
        say(f"SKIPPED {name}: setup failed: {reason}")

    rounds: dict[str, list[driver.Result]] = {name: [] for name in [*names, "direct-http"]}
    upstream = Upstream(args.upstream_server)
    try:
        say(f"upstream ({args.upstream_server}) at {upstream.url}")
        for round_no in range(args.rounds):
            # Rotate the order each round so that drift on the machine is spread over the bridges.
            order = names[round_no % len(names) :] + names[: round_no % len(names)] if names else []
            say(f"round {round_no + 1}/{args.rounds}: direct-http")
            rounds["direct-http"].append(
                driver.measure_direct(
                    upstream.url, calls=args.calls, rows_calls=args.rows_calls, warmup=args.warmup
                )
            )
            for name in order:
                if name in skipped:
                    continue
                try:
                    rounds[name].append(measure_one(name, upstream.url, args))
                except (driver.BridgeError, OSError) as exc:
                    skipped[name] = str(exc)
                    say(f"SKIPPED {name}: {exc}")
    finally:
        upstream.close()

    results = [driver.pool(rounds[name]) for name in names if name not in skipped and rounds[name]]
    direct = driver.pool(rounds["direct-http"])

    print()
    print(
        f"{args.rounds} round(s) x ({args.calls} small + {args.rows_calls} rows calls, "
        f"{args.startup_runs} start-ups) per bridge; upstream {args.upstream_server}"
    )
    print(render_table([*results, direct]))
    for name, reason in skipped.items():
        print(f"\nskipped {name}: {reason.splitlines()[0].removeprefix(name + ': ')}")

    relay = next((r for r in results if r.name == "relay"), None)
    peer_results = [r for r in results if peers.BRIDGES[r.name].is_peer]
    relay_ratios: dict[str, dict[str, Any]] = {}
    verdicts: list[dict[str, Any]] = []
    if relay is not None:
        relay_ratios = ratios(relay, peer_results)
        print("\nrelay / faster peer:")
        for key, title, _ in METRICS:
            entry = relay_ratios.get(key)
            if entry and entry["ratio"] is not None:
                print(f"  {title:<13} {entry['ratio']:6.2f}x  (vs {entry['faster_peer']})")
        verdicts = check_targets(relay, relay_ratios)
        print("\ntargets:")
        for verdict in verdicts:
            state = {True: "MET ", False: "MISS", None: "n/a "}[verdict["met"]]
            value = "-" if verdict["value"] is None else f"{verdict['value']:.3g}"
            print(f"  [{state}] {verdict['target']:<36} measured {value}")
    else:
        print("\nrelay was not measured: no ratios or targets.")

    if args.json is not None:
        report = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "settings": {
                "rounds": args.rounds,
                "calls": args.calls,
                "rows_calls": args.rows_calls,
                "warmup": args.warmup,
                "startup_runs": args.startup_runs,
                "upstream": args.upstream_server,
            },
            "direct_http": direct.to_json(args.samples),
            "bridges": {r.name: r.to_json(args.samples) for r in results},
            "skipped": skipped,
            "relay_vs_faster_peer": relay_ratios,
            "targets": verdicts,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")

    if args.check and ((relay is None and "relay" in names) or any(v["met"] is False for v in verdicts)):
        return 1
    return 0


def measure_one(name: str, url: str, args: argparse.Namespace) -> driver.Result:
    """One round of one bridge, in a scratch directory of its own."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as scratch:
        invocation = peers.BRIDGES[name].invoke(url, Path(scratch))
        say(f"  {name}: {' '.join(invocation.command)}")
        return driver.measure_bridge(
            name,
            invocation.command,
            calls=args.calls,
            rows_calls=args.rows_calls,
            warmup=args.warmup,
            startup_runs=args.startup_runs,
            startup_timeout=args.startup_timeout,
            env={**_base_env(), **invocation.env},
            cwd=invocation.cwd,
        )


def say(text: str) -> None:
    """Progress goes to stderr; the report goes to stdout."""
    print(text, file=sys.stderr, flush=True)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NO_COLOR", "1")
    return env


if __name__ == "__main__":
    sys.exit(main())
