"""Grant renewal never stalls the data path: what a request waits for its Authorization while relay renews.

Usage::

    python benchmarks/grants.py [--rounds 20]

Against a real OpenID provider (oidc-provider 9 on loopback, the test suite's harness; Node from tests/node):

* token round trip: one RFC 8693 token exchange at the provider (what a renewal costs), median and max;
* during a background renewal (the grant is past 80 % of its life, still valid): how long
  ``Grant.authorization()`` takes for requests arriving while the renewal is in flight (target: no wait);
* after expiry (nothing valid left): how long the first request waits (target: at most one token round trip).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import anyio  # noqa: E402
import anyio.lowlevel  # noqa: E402

from relay.auth import oauth  # noqa: E402
from relay.auth.grants import Grant  # noqa: E402
from relay.auth.login import Login  # noqa: E402
from relay.config import GrantConfig, IdentityConfig  # noqa: E402
from tests.support.oidc import CI_BOT, CI_BOT_SECRET, OidcProvider  # noqa: E402


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, max {max(values) * 1000:.2f} ms"


async def measure(op: OidcProvider, rounds: int) -> int:
    os.environ["RELAY_BENCH_SECRET"] = CI_BOT_SECRET
    bot = IdentityConfig(name="bench", issuer=op.issuer, client_id=CI_BOT, flow="client_credentials",
                         client_secret_env="RELAY_BENCH_SECRET", scopes=("mcp:tools",))
    resource = "http://127.0.0.1:9/mcp"
    trips: list[float] = []
    during: list[float] = []
    expired: list[float] = []
    async with oauth.client() as http, anyio.create_task_group() as tg:
        login = Login(bot, http)
        grant = Grant(login, resource, GrantConfig(lifetime=300), tg)
        await grant.authorization()
        for _ in range(rounds):
            t0 = time.perf_counter()
            await grant._exchange()
            trips.append(time.perf_counter() - t0)
        for _ in range(rounds):
            grant._renew_at = 0.0  # past 80 % of its life: the next call starts a background renewal
            first = await grant.authorization()
            while grant._inflight is not None:  # requests keep arriving while the renewal is on the wire
                t0 = time.perf_counter()
                assert await grant.authorization() == first
                during.append(time.perf_counter() - t0)
                await anyio.lowlevel.checkpoint()
            grant._expires_at = 0.0  # expired: nothing valid left
            t0 = time.perf_counter()
            await grant.authorization()
            expired.append(time.perf_counter() - t0)
        tg.cancel_scope.cancel()
    trip = statistics.median(trips)
    print(f"token exchange round trip:               {ms(trips)}")
    print(f"request during a background renewal:     {ms(during)}  ({len(during)} requests)")
    print(f"first request after expiry:              {ms(expired)}  "
          f"({statistics.median(expired) / trip:.2f}x a round trip)")
    ok = max(during) < 0.001 and statistics.median(expired) <= 1.5 * trip
    print(f"target (no wait during renewal; <= one round trip after expiry): {'MET' if ok else 'MISS'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("XDG_STATE_HOME", tempfile.mkdtemp())
    with OidcProvider() as op:
        return anyio.run(measure, op, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
