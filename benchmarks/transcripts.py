"""Signed transcripts: the cost of one record on the hot path, and how fast `relay verify` checks them.

Usage::

    python benchmarks/transcripts.py [--records 20000] [--check]

* sign and write one record: ``SessionWriter.write`` of a typical small message record (JSON body, SHA-256,
  Ed25519 signature, one ``write(2)``), fsync policy ``interval`` (the default; the fsync itself runs off the
  hot path).  Median and p99 over ``--records`` writes.  Target: median <= 50 us.
* verify: ``relay verify`` on that file (a fresh process, as an auditor runs it), and the verifier function
  in-process; records per second.  Target: >= 20,000 records/s.
* The through-relay latency cost of transcripts (target <= 10 %) is measured by ``benchmarks/run.py``, which
  runs ``relay`` and ``relay-no-transcripts`` on the same upstream in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from relay.transcript.hostkey import public_pem  # noqa: E402
from relay.transcript.verify import Trust, verify_paths  # noqa: E402
from relay.transcript.writer import SessionWriter  # noqa: E402

MESSAGE = (b'{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"order ord_1001: paid, '
           b'card ************1111, 129.00 USD"}]}}')
FIELDS = {"dir": "s2c", "kind": "response", "id": 42, "method": "tools/call", "tool": "lookup_order"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "transcripts"
        key = Ed25519PrivateKey.generate()
        writer = SessionWriter(directory, "bench", {"name": "bench", "transport": "stdio", "command": "x"}, key)
        samples = []
        for _ in range(args.records - 2):
            t0 = time.perf_counter_ns()
            writer.write("message", FIELDS, MESSAGE)
            samples.append(time.perf_counter_ns() - t0)
        writer.seal("client_closed", key)
        samples.sort()
        median_us = statistics.median(samples) / 1000
        p99_us = samples[int(len(samples) * 0.99)] / 1000
        size = writer.path.stat().st_size

        t0 = time.perf_counter()
        [result] = verify_paths([writer.path], Trust([key.public_key()]))
        in_process = time.perf_counter() - t0
        assert result.outcome == "sealed", result

        pem = Path(tmp) / "host.pem"
        pem.write_text(public_pem(key.public_key()))
        env = {**os.environ, "XDG_STATE_HOME": str(Path(tmp) / "state")}
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "relay", "verify", str(directory), "--key", str(pem)],
                              cwd=REPO, env=env, capture_output=True, text=True)
        cli = time.perf_counter() - t0
        assert done.returncode == 0, done.stderr

    rate_in, rate_cli = args.records / in_process, args.records / cli
    print(f"{args.records} records, {size / 1e6:.1f} MB")
    print(f"sign + write one record: median {median_us:.1f} us, p99 {p99_us:.1f} us   (target <= 50 us: "
          f"{'MET' if median_us <= 50 else 'MISS'})")
    print(f"verify in-process:       {rate_in:,.0f} records/s ({in_process * 1000:.0f} ms)")
    print(f"relay verify (CLI):      {rate_cli:,.0f} records/s ({cli * 1000:.0f} ms, process start-up included)   "
          f"(target >= 20,000/s: {'MET' if rate_cli >= 20_000 else 'MISS'})")
    return 1 if args.check and (median_us > 50 or rate_cli < 20_000) else 0


if __name__ == "__main__":
    sys.exit(main())
