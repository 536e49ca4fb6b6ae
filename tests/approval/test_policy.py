"""relay.approval.policy and the `approvals:` config section: which rule a tool call matches (first match wins,
conditions ANDed), what it decides, how `relay policy test` explains it, and config errors with file:line: key."""

from __future__ import annotations

import fnmatch
import itertools
from pathlib import Path
from typing import Any

import pytest

from relay.approval import policy as policy_mod
from relay.approval.policy import Call, Policy, json_equal
from relay.config import ApprovalConfig, ApprovalRule, parse
from relay.errors import ConfigError

ANA = {"subject": "u-123", "name": "Ana Lopez", "email": "ana@corp.example", "groups": ["finance", "ops"]}


def rules(*items: str, head: str = "") -> ApprovalConfig:
    """An approvals section from rules written as YAML flow mappings, one per item."""
    body = "".join(f"    - {item}\n" for item in items)
    return parse(f"approvals:\n{head}  rules:\n{body}").approvals


def matches(match: str, **call: Any) -> bool:
    """Whether a single rule with this `match` catches the call (the default is allow, the rule denies)."""
    p = Policy(rules(f"{{match: {match}, action: deny}}"))
    c = Call(**{"server": "payments", "tool": "t", "arguments": {}, **call})
    decision = p.evaluate(c)
    # explain must agree with evaluate, rule by rule
    assert ("MATCH" in p.explain(c)[0]) == (decision.rule is not None)
    return decision.action == "deny"


# -- each condition --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("match", "call", "expected"), [
    ("{server: payments}", {"server": "payments"}, True),
    ("{server: payments}", {"server": "payments-eu"}, False),
    ("{server: 'pay*'}", {"server": "payments-eu"}, True),
    ("{server: 'orders-?'}", {"server": "orders-12"}, False),
    ("{server: '*'}", {"server": "anything"}, True),
    ("{tool: refund_payment}", {"tool": "refund_payment"}, True),
    ("{tool: refund_payment}", {"tool": "refund_payments"}, False),
    ("{tool: 'refund_*'}", {"tool": "refund_"}, True),
    ("{tool: 'refund_*'}", {"tool": "Refund_x"}, False),  # case-sensitive
    ("{tool: 'refund_*'}", {"tool": "xrefund_x"}, False),
    ("{tool: '*_delete'}", {"tool": "user_delete"}, True),
    ("{tool: '*_delete'}", {"tool": "user_delete_all"}, False),
    ("{tool: 'get_?'}", {"tool": "get_a"}, True),
    ("{tool: 'get_?'}", {"tool": "get_ab"}, False),
    ("{tool: '[de]*'}", {"tool": "export"}, True),
    ("{tool: '[!de]*'}", {"tool": "export"}, False),
    ("{tool: 'a*b*c'}", {"tool": "a-b-c"}, True),
    ("{tool: '*'}", {"tool": ""}, True),
    ("{}", {"tool": "anything"}, True),
])
def test_server_and_tool_globs(match: str, call: dict[str, Any], expected: bool) -> None:
    assert matches(match, **call) is expected


@pytest.mark.parametrize(("match", "annotations", "expected"), [
    ("{annotations: {destructiveHint: true}}", {"destructiveHint": True}, True),
    ("{annotations: {destructiveHint: true}}", {"destructiveHint": False}, False),
    ("{annotations: {destructiveHint: true}}", {"destructiveHint": 1}, False),  # not a boolean: not equal
    # A server that says nothing gets the MCP defaults: destructive unless read-only, open world.
    ("{annotations: {destructiveHint: true}}", {}, True),
    ("{annotations: {destructiveHint: true}}", {"readOnlyHint": True}, False),
    ("{annotations: {destructiveHint: false}}", {}, False),
    ("{annotations: {readOnlyHint: true}}", {}, False),
    ("{annotations: {readOnlyHint: false}}", {}, True),
    ("{annotations: {idempotentHint: false}}", {}, True),
    ("{annotations: {openWorldHint: true}}", {}, True),
    ("{annotations: {title: Refund}}", {}, False),
    ("{annotations: {title: Refund}}", {"title": "Refund"}, True),
    ("{annotations: {readOnlyHint: false, openWorldHint: false}}", {"openWorldHint": False}, True),
    ("{annotations: {readOnlyHint: false, openWorldHint: false}}", {"readOnlyHint": True, "openWorldHint": False},
     False),
])
def test_annotations_all_must_equal(match: str, annotations: dict[str, Any], expected: bool) -> None:
    assert matches(match, annotations=annotations) is expected


@pytest.mark.parametrize(("match", "identity", "expected"), [
    ("{identity: u-123}", ANA, True),
    ("{identity: '*@corp.example'}", ANA, True),
    ("{identity: 'Ana *'}", ANA, True),
    ("{identity: '*@other.example'}", ANA, False),
    ("{identity: 'ana*'}", ANA, True),  # the e-mail
    ("{identity: 'ANA*'}", ANA, False),  # case-sensitive
    ("{identity: '*'}", None, False),  # no caller: an identity condition never holds
    ("{identity: '*'}", {"subject": "s"}, True),
    ("{groups: [finance]}", ANA, True),
    ("{groups: [auditors, ops]}", ANA, True),
    ("{groups: [auditors]}", ANA, False),
    ("{groups: finance}", ANA, True),  # one group may be written without a list
    ("{groups: [finance]}", None, False),
    ("{groups: [finance]}", {"subject": "s"}, False),
    ("{groups: [finance]}", {"subject": "s", "groups": "finance"}, False),  # not a list
    ("{identity: '*@corp.example', groups: [auditors]}", ANA, False),
])
def test_identity_and_groups(match: str, identity: dict[str, Any] | None, expected: bool) -> None:
    assert matches(match, identity=identity) is expected


@pytest.mark.parametrize(("test", "value", "expected"), [
    ("{eq: refund}", "refund", True),
    ("{eq: refund}", "Refund", False),
    ("{eq: 1}", 1, True),
    ("{eq: 1}", 1.0, True),
    ("{eq: 1.0}", 1, True),
    ("{eq: 1}", True, False),
    ("{eq: true}", 1, False),
    ("{eq: true}", True, True),
    ("{eq: '1'}", 1, False),
    ("{eq: null}", None, True),
    ("{eq: null}", False, False),
    ("{eq: [1, a]}", [1.0, "a"], True),
    ("{eq: [1, a]}", ["a", 1], False),
    ("{eq: {a: 1}}", {"a": 1}, True),
    ("{eq: {a: 1}}", {"a": 1, "b": 2}, False),
    ("{eq: {a: [true]}}", {"a": [1]}, False),
    ("{in: [EUR, USD]}", "EUR", True),
    ("{in: [EUR, USD]}", "GBP", False),
    ("{in: [1, 2]}", 2.0, True),
    ("{in: [1, 2]}", True, False),
    ("{in: [1, x, null]}", None, True),
    ("{in: [[1]]}", [1], True),
    ("{in: []}", "x", False),
    ("{gt: 100}", 101, True),
    ("{gt: 100}", 100, False),
    ("{gt: 100}", 100.5, True),
    ("{gt: 100}", "500", False),  # only numbers compare
    ("{gt: 0}", True, False),  # a boolean is not a number
    ("{gt: 100}", None, False),
    ("{lt: 0.5}", 0.25, True),
    ("{lt: 0.5}", 0.5, False),
    ("{lt: 10}", [1], False),
    ("{gt: 10, lt: 20}", 15, True),
    ("{gt: 10, lt: 20}", 25, False),
    ("{regex: 'ACCT-\\d+'}", "pay ACCT-123 now", True),  # a search, not a full match
    ("{regex: '^ACCT'}", "pay ACCT-123", False),
    ("{regex: '(?i)urgent'}", "URGENT", True),
    ("{regex: '1'}", 1, False),  # strings only
    ("{regex: '.*'}", None, False),
    ("{exists: true}", None, True),  # present, even if null
    ("{exists: false}", None, False),
    ("{exists: true, eq: 5}", 5, True),
])
def test_argument_tests(test: str, value: Any, expected: bool) -> None:
    assert matches(f'{{args: {{"/v": {test}}}}}', arguments={"v": value}) is expected


@pytest.mark.parametrize("test", ["{eq: null}", "{eq: x}", "{in: [null]}", "{gt: 0}", "{lt: 0}", "{regex: ''}",
                                  "{exists: true}"])
def test_a_missing_argument_fails_every_test_but_exists_false(test: str) -> None:
    assert not matches(f'{{args: {{"/v": {test}}}}}', arguments={"w": None})
    assert matches('{args: {"/v": {exists: false}}}', arguments={"w": None})


DOC = {"to": ["a@x.example", "b@x.example"], "a/b": 1, "m~n": 2, "": 3, "0": 4, "nested": {"deep": {"x": 5}},
       "s": "text", "empty": []}


@pytest.mark.parametrize(("pointer", "found"), [
    ("/to/0", "a@x.example"),
    ("/to/1", "b@x.example"),
    ("/to/2", None),  # past the end
    ("/to/-", None),  # the element after the last: never there
    ("/to/01", None),  # a leading zero is not an array index
    ("/to/-1", None),
    ("/to/x", None),
    ("/a~1b", 1),  # ~1 is "/"
    ("/m~0n", 2),  # ~0 is "~"
    ("/", 3),  # the empty key
    ("/0", 4),  # on an object, digits are a key
    ("/nested/deep/x", 5),
    ("/nested/deep/y", None),
    ("/s/0", None),  # into a string: nothing
    ("/empty/0", None),
    ("/missing/x", None),
])
def test_json_pointers(pointer: str, found: Any) -> None:
    there = matches(f'{{args: {{"{pointer}": {{exists: true}}}}}}', arguments=DOC)
    assert there is (found is not None)
    if found is not None:
        assert matches(f'{{args: {{"{pointer}": {{eq: {found!r}}}}}}}', arguments=DOC)


def test_the_empty_pointer_is_the_whole_arguments_object() -> None:
    assert matches('{args: {"": {eq: {a: 1}}}}', arguments={"a": 1})
    assert not matches('{args: {"": {eq: {}}}}', arguments={"a": 1})


def test_every_argument_test_must_hold() -> None:
    match = '{tool: "export_*", args: {"/limit": {gt: 100}, "/format": {in: [csv]}}}'
    assert matches(match, tool="export_rows", arguments={"limit": 500, "format": "csv"})
    assert not matches(match, tool="export_rows", arguments={"limit": 500, "format": "json"})
    assert not matches(match, tool="export_rows", arguments={"limit": 5, "format": "csv"})
    assert not matches(match, tool="import_rows", arguments={"limit": 500, "format": "csv"})


@pytest.mark.parametrize(("a", "b", "equal"), [
    (1, 1.0, True), (True, 1, False), (False, 0, False), (0, 0.0, True), ("a", "a", True), (None, None, True),
    ([], [], True), ({}, {}, True), ([], {}, False), ({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}, True),
    ((1, 2), [1, 2], True), ("ab", ["a", "b"], False), (None, 0, False),
])
def test_json_equality(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


# -- order, defaults, decisions --------------------------------------------------------------------------------


EXAMPLE = rules(
    '{match: {server: payments, tool: "refund_*"}, action: require_approval, channels: [local, remote]}',
    '{match: {tool: "export_*", args: {"/limit": {gt: 100}}}, action: require_approval}',
    '{match: {tool: "delete_*"}, action: deny, reason: deletes are never done by agents}',
    '{match: {tool: "delete_draft"}, action: allow}',  # never reached: rule 2 catches it first
    '{match: {server: payments}, action: allow}',
    '{match: {annotations: {destructiveHint: true}, groups: [contractors]}, action: deny}',
    head="  default: deny\n  timeout: 5m\n")


@pytest.mark.parametrize(("server", "tool", "arguments", "identity", "rule", "action"), [
    ("payments", "refund_payment", {}, None, 0, "require_approval"),
    ("orders", "refund_payment", {}, None, None, "deny"),  # rule 0 is for payments only; the default is deny
    ("orders", "export_rows", {"limit": 500}, None, 1, "require_approval"),
    ("payments", "export_rows", {"limit": 50}, None, 4, "allow"),
    ("orders", "export_rows", {"limit": "500"}, None, None, "deny"),
    ("orders", "delete_draft", {}, None, 2, "deny"),  # first match wins
    ("payments", "get_payment", {}, None, 4, "allow"),
    ("orders", "get_order", {}, {"subject": "bob", "groups": ["contractors"]}, 5, "deny"),
    ("orders", "get_order", {}, {"subject": "bob", "groups": ["staff"]}, None, "deny"),
])
def test_first_match_wins(server: str, tool: str, arguments: dict[str, Any], identity: dict[str, Any] | None,
                          rule: int | None, action: str) -> None:
    decision = Policy(EXAMPLE).evaluate(Call(server, tool, arguments, identity=identity))
    assert (decision.rule.index if decision.rule else None, decision.action) == (rule, action)


def test_decisions_carry_channels_approvers_timeout_and_reason() -> None:
    cfg = rules('{match: {tool: a}, action: require_approval}',
                '{match: {tool: b}, action: require_approval, channels: [tty, remote], approvers: 2, timeout: 90s, '
                'reason: two people}',
                '{match: {tool: c}, action: deny, reason: never}',
                '{match: {tool: d}, action: deny}',
                '{match: {tool: e}, action: allow}',
                head="  timeout: 2m\n")
    p = Policy(cfg)

    def decide(tool: str) -> tuple[Any, ...]:
        d = p.evaluate(Call("s", tool, {}))
        return d.action, d.reason, d.channels, d.approvers, d.timeout

    assert decide("a") == ("require_approval", None, ("local",), 1, 120.0)
    assert decide("b") == ("require_approval", "two people", ("tty", "remote"), 2, 90.0)
    assert decide("c") == ("deny", "never", (), 0, 120.0)
    assert decide("d") == ("deny", "denied by relay's approval policy (rule 3)", (), 0, 120.0)
    assert decide("e") == ("allow", None, (), 0, 120.0)
    assert decide("f") == ("allow", None, (), 0, 120.0)
    assert p.evaluate(Call("s", "b", {})).rule is cfg.rules[1]


@pytest.mark.parametrize(("default", "action", "reason"), [
    ("allow", "allow", None),
    ("deny", "deny", "no approval rule allows this call (approvals.default: deny)"),
])
def test_the_default_applies_when_no_rule_matches(default: str, action: str, reason: str | None) -> None:
    for cfg in (rules('{match: {tool: x}, action: allow}', head=f"  default: {default}\n"),
                parse(f"approvals:\n  default: {default}\n").approvals):
        d = Policy(cfg).evaluate(Call("s", "y", {}))
        assert (d.action, d.rule, d.reason, d.channels, d.approvers, d.timeout) == (action, None, reason, (), 0, 300.0)


def test_no_approvals_section_allows_everything() -> None:
    cfg = parse("servers: {}\n").approvals
    assert cfg == ApprovalConfig(default="allow", timeout=300.0, rules=())
    assert Policy(cfg).evaluate(Call("s", "t", {})).action == "allow"


def test_the_same_tool_with_other_arguments_or_callers_is_judged_again() -> None:
    # The policy remembers which rules a (server, tool) can reach, never a decision.
    p = Policy(EXAMPLE)
    assert p.evaluate(Call("orders", "export_rows", {"limit": 500})).action == "require_approval"
    assert p.evaluate(Call("orders", "export_rows", {"limit": 5})).action == "deny"
    assert p.evaluate(Call("orders", "export_rows", {"limit": 500})).action == "require_approval"
    contractor = {"subject": "bob", "groups": ["contractors"]}
    assert p.evaluate(Call("orders", "get", {}, identity=contractor)).rule == EXAMPLE.rules[5]
    assert p.evaluate(Call("orders", "get", {}, {"readOnlyHint": True}, contractor)).rule is None


def test_the_memory_of_tool_names_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_mod, "_CACHE_LIMIT", 10)
    p = Policy(EXAMPLE)
    for i in range(50):
        assert p.evaluate(Call("orders", f"made_up_{i}", {})).action == "deny"
        assert p.evaluate(Call("payments", f"refund_{i}", {})).action == "require_approval"
    assert sum(len(by_tool) for by_tool in p._cache.values()) <= 10


TOOL_PATTERNS = ["refund_payment", "refund_*", "refund_p*", "*", "*_payment", "ref?nd_*", "[rx]efund_*", "*und*",
                 "refund_payment_*", "r*_*t", "", "x"]
TOOLS = ["refund_payment", "refund_", "refund", "refund_payment_2", "xefund_payment", "get_payment", "r_t", "",
         "refund_p", "x", "y"]


def test_the_index_finds_the_same_rule_as_a_scan_of_every_rule() -> None:
    # Rules of every kind of tool pattern, in every order the index buckets could disturb.
    for order in itertools.islice(itertools.permutations(TOOL_PATTERNS[:8]), 0, None, 997):
        items = [f"{{match: {{tool: '{t}', server: '{'pay*' if i % 3 == 0 else '*'}'}}, action: deny}}"
                 for i, t in enumerate(order)]
        cfg = rules(*items)
        p = Policy(cfg)
        for server, tool in itertools.product(["payments", "orders"], TOOLS):
            want = next((r for r in cfg.rules if fnmatch.fnmatchcase(server, str(r.server))
                         and fnmatch.fnmatchcase(tool, str(r.tool))), None)
            assert p.evaluate(Call(server, tool, {})).rule is want, (order, server, tool)


# -- explain ---------------------------------------------------------------------------------------------------


def test_explain_gives_each_rule_its_first_failing_condition_then_the_decision() -> None:
    lines = Policy(EXAMPLE).explain(Call("orders", "export_rows", {"limit": "500"}, {"readOnlyHint": True},
                                         {"subject": "bob", "groups": ["contractors"]}))
    assert lines == [
        "rule 0 (line 5, require_approval): no: server 'orders' is not 'payments'",
        "rule 1 (line 6, require_approval): no: argument /limit is \"500\", not > 100",
        "rule 2 (line 7, deny): no: tool 'export_rows' does not match 'delete_*'",
        "rule 3 (line 8, allow): no: tool 'export_rows' is not 'delete_draft'",
        "rule 4 (line 9, allow): no: server 'orders' is not 'payments'",
        "rule 5 (line 10, deny): no: annotation destructiveHint is false (MCP default), not true",
        "decision: deny by approvals.default (no rule matched): no approval rule allows this call "
        "(approvals.default: deny)",
    ]


def test_explain_names_the_match_and_skips_the_rest() -> None:
    lines = Policy(EXAMPLE).explain(Call("payments", "refund_payment", {}))
    assert lines[0] == "rule 0 (line 5, require_approval): MATCH: server is 'payments'; tool matches 'refund_*'"
    assert lines[1:6] == [f"rule {i} (line {i + 5}, {a}): not reached"
                          for i, a in enumerate(["require_approval", "deny", "allow", "allow", "deny"], 1)]
    assert lines[6] == "decision: require_approval by rule 0 (line 5): 1 approver on local, remote, timeout 300s"


@pytest.mark.parametrize(("match", "call", "why"), [
    ('{args: {"/v": {exists: true}}}', {}, "argument /v is missing, wanted exists: true"),
    ('{args: {"/v": {exists: false}}}', {"arguments": {"v": 1}}, "argument /v is present, wanted exists: false"),
    ('{args: {"/v": {in: [a, b]}}}', {"arguments": {"v": "c"}}, 'argument /v is "c", not in ["a", "b"]'),
    ('{args: {"/v": {regex: "^x"}}}', {"arguments": {"v": 5}}, 'argument /v is 5, not =~ "^x"'),
    ('{args: {"/v": {gt: 1, lt: 3}}}', {"arguments": {"v": 3}}, "argument /v is 3, not < 3"),
    ("{identity: 'a*'}", {}, "no caller identity (wanted 'a*')"),
    ("{identity: 'a*'}", {"identity": {"subject": "b"}}, "caller's subject, email and name do not match 'a*'"),
    ("{groups: [x, w]}", {"identity": {"subject": "b", "groups": []}}, "caller is in none of the groups w, x"),
    ("{annotations: {title: T}}", {}, "annotation title is missing, not \"T\""),
])
def test_explain_says_why_a_condition_fails(match: str, call: dict[str, Any], why: str) -> None:
    p = Policy(rules(f"{{match: {match}, action: deny}}"))
    assert p.explain(Call(**{"server": "s", "tool": "t", "arguments": {}, **call}))[0] == f"rule 0 (line 3, deny): no: {why}"


def test_explain_without_rules() -> None:
    assert Policy(ApprovalConfig()).explain(Call("s", "t", {})) == [
        "no rules", "decision: allow by approvals.default (no rule matched)"]


# -- the config section ----------------------------------------------------------------------------------------


def test_the_issue_example_parses_to_rules(tmp_path: Path) -> None:
    text = """\
approvals:
  default: allow            # or deny, for allow-list deployments
  timeout: 5m
  rules:
    - match: {server: payments, tool: "refund_*"}
      action: require_approval
      channels: [local, remote]
    - match: {tool: "export_*", args: {"/limit": {gt: 100}}}
      action: require_approval
    - match: {tool: "delete_*"}
      action: deny
      reason: deletes are never done by agents
    - match:
        server: orders
        annotations: {destructiveHint: true}
        identity: "*@contractors.example"
        groups: [contractors]
        args: {"/to/0": {regex: "@", exists: true}, "/kind": {in: [a, 1, null]}, "/n": {lt: 2.5, eq: 1}}
      action: require_approval
      approvers: 2
      timeout: 30s
      reason: contractors need two approvers
"""
    cfg = parse(text, tmp_path / "c.yaml").approvals
    assert (cfg.default, cfg.timeout, len(cfg.rules)) == ("allow", 300.0, 4)
    assert cfg.rules[0] == ApprovalRule(
        index=0, line=5, server="payments", tool="refund_*", annotations={}, args={}, identity=None, groups=(),
        action="require_approval", reason=None, channels=("local", "remote"), approvers=1, timeout=None)
    assert cfg.rules[1].args == {"/limit": {"gt": 100}} and cfg.rules[1].channels == ("local",)
    assert (cfg.rules[2].action, cfg.rules[2].reason, cfg.rules[2].line) == ("deny", "deletes are never done by agents", 10)
    last = cfg.rules[3]
    assert (last.index, last.line, last.server, last.tool) == (3, 13, "orders", None)
    assert last.annotations == {"destructiveHint": True}
    assert (last.identity, last.groups) == ("*@contractors.example", ("contractors",))
    assert last.args == {"/to/0": {"regex": "@", "exists": True}, "/kind": {"in": ["a", 1, None]},
                         "/n": {"lt": 2.5, "eq": 1}}
    assert (last.approvers, last.timeout, last.reason) == (2, 30.0, "contractors need two approvers")


def test_environment_variables_are_expanded_in_patterns_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM", "finance")
    cfg = rules('{match: {groups: ["${TEAM}"], args: {"/team": {eq: "${TEAM}"}}}, action: deny}')
    assert cfg.rules[0].groups == ("finance",) and cfg.rules[0].args == {"/team": {"eq": "finance"}}


@pytest.mark.parametrize(("text", "line", "key", "problem", "hint"), [
    ("approvals:\n  defualt: deny\n", 2, "approvals.defualt", "unknown key", "did you mean 'default'?"),
    ("approvals:\n  default: block\n", 2, "approvals.default", "'block' is not valid", "one of: allow, deny"),
    ("approvals:\n  timeout: soon\n", 2, "approvals.timeout", "expected a duration such as 100ms, 30s or 5m, got 'soon'",
     None),
    ("approvals:\n  rules: {a: 1}\n", 2, "approvals.rules", "expected a list of rules", None),
    ("approvals:\n  rules:\n    - deny\n", 3, "approvals.rules[0]", "expected a mapping, got str", None),
    ("approvals:\n  rules:\n    - match: {tool: x}\n", 3, "approvals.rules[0]", "a rule needs an 'action'",
     "one of: allow, require_approval, deny"),
    ("approvals:\n  rules:\n    - {action: alow}\n", 3, "approvals.rules[0].action", "'alow' is not valid",
     "did you mean 'allow'?"),
    ("approvals:\n  rules:\n    - action: deny\n      reasons: x\n", 4, "approvals.rules[0].reasons", "unknown key",
     "did you mean 'reason'?"),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        tools: x\n", 5, "approvals.rules[0].match.tools",
     "unknown key", "did you mean 'tool'?"),
    ("approvals:\n  rules:\n    - action: deny\n      match: {tool: ''}\n", 4, "approvals.rules[0].match.tool",
     "an empty pattern matches nothing", "use '*' for any, or leave the key out"),
    ("approvals:\n  rules:\n    - action: deny\n      match: {server: [a]}\n", 4, "approvals.rules[0].match.server",
     "expected a string, got a list", None),
    ("approvals:\n  rules:\n    - action: deny\n      match: {annotations: {destructivehint: true}}\n", 4,
     "approvals.rules[0].match.annotations.destructivehint", "unknown key", "did you mean 'destructiveHint'?"),
    ("approvals:\n  rules:\n    - action: deny\n      match: {annotations: {readOnlyHint: 'yes'}}\n", 4,
     "approvals.rules[0].match.annotations.readOnlyHint", "expected true or false, got str", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          limit: {gt: 1}\n", 6,
     'approvals.rules[0].match.args["limit"]', "not a JSON pointer",
     "write /name/0/field (RFC 6901: '~1' for '/' and '~0' for '~' in a name)"),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args: {'/a~2': {gt: 1}}\n", 5,
     'approvals.rules[0].match.args["/a~2"]', "not a JSON pointer", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /limit: {gte: 1}\n", 6,
     'approvals.rules[0].match.args["/limit"].gte', "unknown key", "did you mean 'gt'?"),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /limit: 100\n", 6,
     'approvals.rules[0].match.args["/limit"]', "expected a mapping, got int", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /limit: {}\n", 6,
     'approvals.rules[0].match.args["/limit"]', "needs a test", "one or more of: eq, in, gt, lt, regex, exists"),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /limit:\n            gt: '100'\n",
     7, 'approvals.rules[0].match.args["/limit"].gt', "expected a number, got str", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /limit: {lt: true}\n", 6,
     'approvals.rules[0].match.args["/limit"].lt', "expected a number, got a boolean", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /c: {in: EUR}\n", 6,
     'approvals.rules[0].match.args["/c"].in', "expected a list of values, got str", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /c: {regex: '('}\n", 6,
     'approvals.rules[0].match.args["/c"].regex', "not a valid regular expression: missing ), unterminated subpattern "
     "at position 0", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /c: {exists: 1}\n", 6,
     'approvals.rules[0].match.args["/c"].exists', "expected true or false, got int", None),
    ("approvals:\n  rules:\n    - action: deny\n      match:\n        args:\n          /d: {eq: 2024-01-01}\n", 6,
     'approvals.rules[0].match.args["/d"].eq', "expected a JSON value (string, number, true/false, null, list or "
     "mapping), got date", "quote it to compare with a string"),
    ("approvals:\n  rules:\n    - action: deny\n      channels: [local]\n", 4, "approvals.rules[0].channels",
     "is only for action require_approval, not deny", None),
    ("approvals:\n  rules:\n    - action: allow\n      approvers: 2\n", 4, "approvals.rules[0].approvers",
     "is only for action require_approval, not allow", None),
    ("approvals:\n  rules:\n    - action: deny\n      timeout: 1m\n", 4, "approvals.rules[0].timeout",
     "is only for action require_approval, not deny", None),
    ("approvals:\n  rules:\n    - action: allow\n      reason: fine\n", 4, "approvals.rules[0].reason",
     "is for deny and require_approval, not allow", "a call that is allowed goes through without a message"),
    ("approvals:\n  rules:\n    - action: require_approval\n      channels: [local, slack]\n", 4,
     "approvals.rules[0].channels", "'slack' is not valid", "one of: local, tty, elicitation, remote"),
    ("approvals:\n  rules:\n    - action: require_approval\n      channels: [remot]\n", 4,
     "approvals.rules[0].channels", "'remot' is not valid", "did you mean 'remote'?"),
    ("approvals:\n  rules:\n    - action: require_approval\n      channels: [tty, tty]\n", 4,
     "approvals.rules[0].channels", "names a channel twice", None),
    ("approvals:\n  rules:\n    - action: require_approval\n      channels: []\n", 4,
     "approvals.rules[0].channels", "expected a list of channel names, got nothing", None),
    ("approvals:\n  rules:\n    - action: require_approval\n      approvers: 0\n", 4,
     "approvals.rules[0].approvers", "expected a positive whole number, got 0", None),
    ("approvals:\n  rules:\n    - action: require_approval\n      timeout: -1\n", 4,
     "approvals.rules[0].timeout", "expected a duration such as 100ms, 30s or 5m, got -1", None),
    ("approvals:\n  rules:\n    - action: deny\n    - action: deny\n      match: {groups: }\n", 5,
     "approvals.rules[1].match.groups", "expected a list of group names, got nothing", None),
])
def test_config_errors_name_file_line_and_key(text: str, line: int, key: str, problem: str, hint: str | None,
                                              tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    with pytest.raises(ConfigError) as info:
        parse(text, path)
    assert info.value.message == f"{path}:{line}: {key}: {problem}"
    if hint is not None:
        assert info.value.hint == hint
    assert info.value.exit_code == 2
