"""What the approval policy costs a tools/call: 100 varied rules, a call that matches none, and one that matches.

Usage::

    python benchmarks/policy.py [--rules 100] [--batches 300] [--batch 1000] [--check]

Measured, per evaluation (the median and p99 of batch means; a batch is --batch evaluations back to back):

* no match, repeated: the same unmatched call again and again (a session calling its tools: the common case);
* no match, first time: every call names a tool never seen before (the candidate index, without the
  per-(server, tool) memory);
* match: a call that passes the tool, a regex and an exists test of rule 98;
* for comparison, in the same run: a naive first-match scan (fnmatchcase on server and tool per rule).

Target: a call that matches no rule costs <= 20 us with 100 rules (both no-match figures).
"""

from __future__ import annotations

import argparse
import fnmatch
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from relay.approval.policy import Call, Policy  # noqa: E402
from relay.config import ApprovalConfig, ApprovalRule, parse  # noqa: E402

TARGET_US = 20.0
VERBS = ("get", "list", "create", "update", "delete", "export", "refund", "capture", "void", "search")
NOUNS = ("payment", "order", "customer", "invoice", "refund", "dispute", "payout", "card", "report", "user")


def rules_yaml(n: int) -> str:
    """n rules in the shapes a real policy has: exact names, prefix and other globs, servers, and conditions."""
    lines = ["approvals:", "  default: allow", "  timeout: 5m", "  rules:"]
    for i in range(n):
        verb, noun = VERBS[(3 * i + i // 10) % len(VERBS)], NOUNS[(i // 10 + 7 * i) % len(NOUNS)]
        kind = i % 10
        if kind == 0:
            match = f'{{server: payments, tool: "{verb}_{noun}"}}'
        elif kind == 1:
            match = f'{{tool: "{verb}_{noun}*"}}'
        elif kind == 2:
            match = f'{{server: "pay*", tool: "*_{noun}_{i}"}}'
        elif kind == 3:
            match = f'{{tool: "{verb}_{noun}", args: {{"/limit": {{gt: {100 + i}}}}}}}'
        elif kind == 4:
            match = f'{{tool: "{verb}_*", args: {{"/amount": {{gt: {1000 * i}}}, "/currency": {{in: [EUR, USD]}}}}}}'
        elif kind == 5:
            match = f'{{tool: "{verb}_[a-m]*_{i}", annotations: {{destructiveHint: true}}}}'
        elif kind == 6:
            match = f'{{server: "orders-*", tool: "{verb}_{noun}", identity: "*@contractors.example"}}'
        elif kind == 7:
            match = f'{{tool: "{verb}_{noun}_v?", groups: [interns, contractors]}}'
        elif kind == 8:
            match = f'{{tool: "{verb}_{noun}", args: {{"/note": {{regex: "(?i)urgent|asap"}}, "/to/0": {{exists: true}}}}}}'
        else:
            match = f'{{server: "legacy-{i}", tool: "*"}}'
        action = ("require_approval", "deny", "allow")[i % 3]
        lines.append(f"    - match: {match}")
        lines.append(f"      action: {action}")
    return "\n".join(lines) + "\n"


def naive(config: ApprovalConfig) -> Callable[[Call], ApprovalRule | None]:
    """The obvious evaluator, for scale: every rule in turn, fnmatchcase on server and tool (no conditions)."""
    def evaluate(call: Call) -> ApprovalRule | None:
        for rule in config.rules:
            if rule.server is not None and not fnmatch.fnmatchcase(call.server, rule.server):
                continue
            if rule.tool is not None and not fnmatch.fnmatchcase(call.tool, rule.tool):
                continue
            if not rule.args and not rule.annotations and rule.identity is None and not rule.groups:
                return rule
        return None
    return evaluate


def per_call_us(fn: Callable[[int], None], batches: int, batch: int) -> tuple[float, float]:
    """Median and p99 of the mean time per evaluation over batches, in microseconds."""
    fn(batch)  # warm-up
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        fn(batch)
        samples.append((time.perf_counter_ns() - t0) / batch / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    config = parse(rules_yaml(args.rules)).approvals
    policy = Policy(config)
    who = {"subject": "u-1", "email": "ana@example.com", "name": "Ana", "groups": ["finance"]}

    # Candidates whose tool pattern fits but whose conditions fail: export_* wants /amount > 4000 in EUR/USD.
    miss = Call("payments", "export_payment", {"amount": 12, "currency": "EUR", "limit": 5},
                {"readOnlyHint": True}, who)
    assert policy.evaluate(miss).rule is None, policy.explain(miss)
    unseen = [Call("orders-eu", f"lookup_thing_{i}", {"id": i}, {}, who) for i in range(args.batch * 8)]
    assert all(policy.evaluate(c).rule is None for c in unseen[:50])
    target = next(r for r in reversed(config.rules) if "/note" in r.args)  # regex and exists, after ~80 rules
    hit = Call("payments", str(target.tool), {"note": "ASAP please", "to": ["ops@example.com"], "limit": 5},
               {"destructiveHint": True}, who)
    matched = policy.evaluate(hit).rule
    assert matched is target, policy.explain(hit)

    def repeated(n: int) -> None:
        evaluate = policy.evaluate
        for _ in range(n):
            evaluate(miss)

    cursor = [0]

    def first_time(n: int) -> None:
        # The cache would remember these names; empty it so that each one is looked up as never seen.
        policy._cache.clear()
        policy._cached = 0
        start = cursor[0]
        evaluate = policy.evaluate
        for call in unseen[start:start + n]:
            evaluate(call)
        cursor[0] = (start + n) % (len(unseen) - n)

    def matching(n: int) -> None:
        evaluate = policy.evaluate
        for _ in range(n):
            evaluate(hit)

    slow = naive(config)

    def naive_miss(n: int) -> None:
        for _ in range(n):
            slow(miss)

    rows = [
        ("no match, repeated", per_call_us(repeated, args.batches, args.batch)),
        ("no match, first time (tool never seen)", per_call_us(first_time, args.batches, args.batch)),
        (f"match (rule {matched.index}: tool, regex, exists)", per_call_us(matching, args.batches, args.batch)),
        ("naive scan, no match (for scale)", per_call_us(naive_miss, max(10, args.batches // 10), args.batch)),
    ]
    print(f"approval policy, {len(config.rules)} rules, us per evaluation (median of {args.batches} batches "
          f"of {args.batch}; p99 of batch means)")
    for label, (median, p99) in rows:
        print(f"  {label:<42} {median:8.3f}   p99 {p99:8.3f}")
    worst = max(rows[0][1][0], rows[1][1][0])
    print(f"  naive / relay, no match repeated: {rows[3][1][0] / rows[0][1][0]:.0f}x")
    ok = worst <= TARGET_US
    print(f"target (no match <= {TARGET_US:g} us with {len(config.rules)} rules): {worst:.3f} us: "
          f"{'MET' if ok else 'MISS'}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
