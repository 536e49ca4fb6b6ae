"""Compare relay's data path with its peers, mcp-remote and mcp-proxy.

Usage::

    python benchmarks/run.py [--calls N] [--rows-calls M] [--rounds R] [--warmup W]
                             [--only relay,mcp-remote,mcp-proxy] [--json results.json] [--check]
                             [--upstream-format json|sse|both] [--rows-shape text|items|structured]
                             [--rows-count 2000] [--upstream-chunk-size BYTES] [--upstream-nagle]

One run starts one upstream (``benchmarks/upstream.py``; one per format with
``--upstream-format both``), installs the peers if needed
(``benchmarks/peers.py``), then, for each of R rounds, times the direct-HTTP
baseline and drives each bridge over stdio with the same client
(``benchmarks/driver.py``) against that same upstream, each bridge spawned
afresh, in an order rotated every round (formats too).  The samples of all
rounds are pooled (peak memory: the highest round).  The warm-up is long on
purpose: V8's JIT keeps speeding mcp-remote up for several hundred calls, and
a short warm-up would flatter relay.  A bridge that fails to start or answers
wrongly is skipped with its reason; the others still run.

It prints one table per upstream format (start-up, small-call
median/p90/p99, rows median, peak RSS), relay's ratio to the faster peer on
each metric, and relay against the targets:

* small-call median <= 0.7 x the faster peer's;
* rows median <= 0.1 x the faster peer's;
* start-up <= 300 ms;
* peak RSS <= 60 MB.

With ``--upstream-format both`` a last table puts each bridge's medians
under both formats side by side.  ``--check`` makes the exit status 1 when
relay missed a target (under any format) or, asked for, could not be
measured.
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
import upstream

UPSTREAM: Final = Path(__file__).resolve().parent / "upstream.py"
UPSTREAM_FORMAT_TITLES: Final = {"json": "application/json", "sse": "text/event-stream (SSE)"}

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

    def __init__(
        self,
        server: str = "raw",
        timeout: float = 15.0,
        *,
        fmt: str = "json",
        rows_shape: str = "text",
        rows_count: int = upstream.ROWS_COUNT,
        chunk_size: int = 0,
        nagle: bool = False,
    ) -> None:
        options = ["--format", fmt, "--rows-shape", rows_shape, "--rows-count", str(rows_count)]
        options += ["--chunk-size", str(chunk_size), *(["--nagle"] if nagle else [])]
        self.proc = subprocess.Popen(
            [sys.executable, str(UPSTREAM), "--port", "0", "--server", server, *options, "--exit-with-stdin"],
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
    parser.add_argument(
        "--upstream-format",
        choices=(*upstream.FORMATS, "both"),
        default="json",
        help="responses as application/json (default) or text/event-stream; both: one table each",
    )
    parser.add_argument(
        "--upstream-chunk-size",
        type=int,
        default=0,
        help="the upstream sends bodies in HTTP chunks of this many bytes, one write each (default 0: whole)",
    )
    parser.add_argument(
        "--upstream-nagle",
        action="store_true",
        help="diagnostic: the upstream clears TCP_NODELAY (Nagle on), as a careless server would",
    )
    parser.add_argument(
        "--rows-shape", choices=upstream.ROWS_SHAPES, default="text", help="shape of the rows result"
    )
    parser.add_argument(
        "--rows-count", type=int, default=upstream.ROWS_COUNT, help="orders in the rows result (default 2000)"
    )
    parser.add_argument("--no-setup", action="store_true", help="do not install missing peers")
    parser.add_argument("--check", action="store_true", help="exit 1 when relay misses a target")
    args = parser.parse_args(argv)
    if (
        min(args.rounds, args.calls, args.rows_calls, args.startup_runs, args.rows_count) < 1
        or args.warmup < 0
    ):
        parser.error("--rounds, --calls, --rows-calls, --startup-runs and --rows-count must be at least 1")
    if args.upstream_chunk_size < 0:
        parser.error("--upstream-chunk-size must not be negative")
    formats = list(upstream.FORMATS) if args.upstream_format == "both" else [args.upstream_format]
    if args.upstream_server == "asgi" and (
        formats != ["json"] or args.upstream_chunk_size or args.upstream_nagle
    ):
        parser.error(
            "--upstream-server asgi takes no --upstream-format sse/both, --upstream-chunk-size, --upstream-nagle"
        )

    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in peers.BRIDGES]
    if unknown:
        parser.error(f"unknown bridge(s) {', '.join(unknown)}; choose from {', '.join(peers.BRIDGES)}")

    skipped: dict[str, str] = {} if args.no_setup else peers.setup(names)
    for name, reason in skipped.items():
        say(f"SKIPPED {name}: setup failed: {reason}")

    # One upstream per format, all up at once: each round measures every format, so that
    # drift on the machine is spread over the formats as well as over the bridges.
    rounds: dict[str, dict[str, list[driver.Result]]] = {
        fmt: {name: [] for name in [*names, "direct-http"]} for fmt in formats
    }
    # Setup failures count for every format; a bridge failing on one format still runs on the others.
    failed: dict[str, dict[str, str]] = {fmt: dict(skipped) for fmt in formats}
    upstreams: dict[str, Upstream] = {}
    try:
        for fmt in formats:
            upstreams[fmt] = Upstream(
                args.upstream_server,
                fmt=fmt,
                rows_shape=args.rows_shape,
                rows_count=args.rows_count,
                chunk_size=args.upstream_chunk_size,
                nagle=args.upstream_nagle,
            )
            say(f"upstream ({args.upstream_server}, {fmt}) at {upstreams[fmt].url}")
        for round_no in range(args.rounds):
            # Rotate the order each round so that drift on the machine is spread over the bridges.
            order = names[round_no % len(names) :] + names[: round_no % len(names)] if names else []
            for fmt in formats[round_no % len(formats) :] + formats[: round_no % len(formats)]:
                url = upstreams[fmt].url
                say(f"round {round_no + 1}/{args.rounds}, {fmt}: direct-http")
                rounds[fmt]["direct-http"].append(
                    driver.measure_direct(
                        url,
                        calls=args.calls,
                        rows_calls=args.rows_calls,
                        warmup=args.warmup,
                        rows_expected=args.rows_count,
                    )
                )
                for name in order:
                    if name in failed[fmt]:
                        continue
                    try:
                        rounds[fmt][name].append(measure_one(name, url, args))
                    except (driver.BridgeError, OSError) as exc:
                        failed[fmt][name] = str(exc)
                        say(f"SKIPPED {name} ({fmt} upstream): {exc}")
    finally:
        for server in upstreams.values():
            server.close()

    shape = f"rows {args.rows_shape} x {args.rows_count}"
    if args.upstream_chunk_size:
        shape += f", chunks of {args.upstream_chunk_size} B"
    if args.upstream_nagle:
        shape += ", Nagle on (no TCP_NODELAY)"
    sections: dict[str, dict[str, Any]] = {}
    for fmt in formats:
        sections[fmt] = report_format(fmt, names, rounds[fmt], failed[fmt], args, shape)
    if len(formats) > 1:
        print_format_comparison(sections)

    if args.json is not None:
        report: dict[str, Any] = {
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
                "upstream_format": args.upstream_format,
                "upstream_chunk_size": args.upstream_chunk_size,
                "upstream_nagle": args.upstream_nagle,
                "rows_shape": args.rows_shape,
                "rows_count": args.rows_count,
            },
        }
        if len(formats) == 1:
            report.update(_section_json(sections[formats[0]], args.samples))
        else:
            report["runs"] = {fmt: _section_json(section, args.samples) for fmt, section in sections.items()}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")

    if args.check:
        for section in sections.values():
            if (section["relay"] is None and "relay" in names) or any(
                v["met"] is False for v in section["targets"]
            ):
                return 1
    return 0


def report_format(
    fmt: str,
    names: Sequence[str],
    rounds: dict[str, list[driver.Result]],
    skipped: dict[str, str],
    args: argparse.Namespace,
    shape: str,
) -> dict[str, Any]:
    """Print the table, ratios and targets of one upstream format; return them for the JSON."""
    results = [driver.pool(rounds[name]) for name in names if name not in skipped and rounds[name]]
    direct = driver.pool(rounds["direct-http"])

    print()
    print(
        f"{args.rounds} round(s) x ({args.calls} small + {args.rows_calls} rows calls, "
        f"{args.startup_runs} start-ups) per bridge; upstream {args.upstream_server}, "
        f"{UPSTREAM_FORMAT_TITLES[fmt]}, {shape}"
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
        bare = next((r for r in results if r.name == "relay-no-transcripts"), None)
        if bare is not None and bare.small_median_ms:
            overhead = relay.small_median_ms / bare.small_median_ms
            print(f"\nsigned transcripts: small p50 {relay.small_median_ms:.3f} ms with, "
                  f"{bare.small_median_ms:.3f} ms without ({overhead:.2f}x)")
            verdicts.append({"target": "small p50, transcripts on <= 1.1x off", "metric": "small_median_ms",
                             "bound": 1.1, "relative": True, "value": overhead, "met": overhead <= 1.1})
        print("\ntargets:")
        for verdict in verdicts:
            state = {True: "MET ", False: "MISS", None: "n/a "}[verdict["met"]]
            value = "-" if verdict["value"] is None else f"{verdict['value']:.3g}"
            print(f"  [{state}] {verdict['target']:<36} measured {value}")
    else:
        print("\nrelay was not measured: no ratios or targets.")
    return {
        "results": results,
        "direct": direct,
        "skipped": dict(skipped),
        "relay": relay,
        "ratios": relay_ratios,
        "targets": verdicts,
    }


def print_format_comparison(sections: dict[str, dict[str, Any]]) -> None:
    """Each bridge's small and rows medians under every upstream format, side by side."""
    formats = list(sections)
    rows = [["bridge", *(f"{title} {fmt}" for _, title in _COMPARED for fmt in formats)]]
    bridge_names = {
        r.name: None for section in sections.values() for r in [*section["results"], section["direct"]]
    }
    for name in bridge_names:
        cells = [name]
        for key, _ in _COMPARED:
            for fmt in formats:
                section = sections[fmt]
                found = next((r for r in [*section["results"], section["direct"]] if r.name == name), None)
                cells.append("-" if found is None else f"{found.to_json()[key]:.3f}")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print("\nby upstream format (medians, ms):")
    for i, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


_COMPARED: Final = (("small_median_ms", "small p50"), ("rows_median_ms", "rows p50"))


def _section_json(section: dict[str, Any], samples: bool) -> dict[str, Any]:
    return {
        "direct_http": section["direct"].to_json(samples),
        "bridges": {r.name: r.to_json(samples) for r in section["results"]},
        "skipped": section["skipped"],
        "relay_vs_faster_peer": section["ratios"],
        "targets": section["targets"],
    }


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
            rows_expected=args.rows_count,
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
