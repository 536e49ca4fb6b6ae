"""The approval policy: which rule a tool call matches, first match wins, and what that decides.

Rules are compiled once; a call is matched against the few rules whose server and tool patterns fit it,
found through an index on the tool name and remembered per (server, tool), so an unmatched call costs
a couple of dictionary look-ups.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.config import ApprovalConfig, ApprovalRule

_CACHE_LIMIT = 4096  # (server, tool) pairs remembered; an agent can make up tool names, so it is bounded
_GLOB_CHARS = frozenset("*?[")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_MISSING: Any = object()


@dataclass(frozen=True)
class Call:
    """A tools/call as the policy sees it."""

    server: str
    tool: str
    arguments: Mapping[str, Any]
    annotations: Mapping[str, Any] = field(default_factory=dict)  # from the server's tools/list (may be empty)
    identity: Mapping[str, Any] | None = None  # {"subject", "name", "email", "groups": [...]} or None


@dataclass(frozen=True)
class Decision:
    action: str  # allow | require_approval | deny
    rule: ApprovalRule | None  # None: the section's default applied
    reason: str | None
    channels: tuple[str, ...]
    approvers: int
    timeout: float

    def describe(self) -> str:
        source = f"rule {self.rule.index} (line {self.rule.line})" if self.rule else "approvals.default (no rule matched)"
        text = f"{self.action} by {source}"
        if self.action == "require_approval":
            many = "s" if self.approvers != 1 else ""
            text += (f": {self.approvers} approver{many} on {', '.join(self.channels)}, "
                     f"timeout {self.timeout:g}s")
        if self.reason:
            text += f": {self.reason}"
        return text


# -- conditions ----------------------------------------------------------------------------------------------
# Each condition tests a call (fast, no allocation on the common path) and says why a call fails it
# (for `relay policy test` only).


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: 1 == 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if _is_array(a) and _is_array(b):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return False


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is(pattern: str, *, not_: bool = False) -> str:
    """How a name relates to a pattern, in words: a literal name "is", a glob "matches"."""
    if _GLOB_CHARS.intersection(pattern):
        return "does not match" if not_ else "matches"
    return "is not" if not_ else "is"


def _glob(pattern: str) -> Callable[[str], bool]:
    if not _GLOB_CHARS.intersection(pattern):
        return pattern.__eq__
    if pattern == "*":
        return lambda _text: True
    match = re.compile(fnmatch.translate(pattern)).match
    return lambda text: match(text) is not None


class _Pointer:
    """An RFC 6901 JSON pointer, split and unescaped once."""

    __slots__ = ("text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        raw = text.split("/")[1:] if text else []
        names = [t.replace("~1", "/").replace("~0", "~") for t in raw]
        self.tokens = tuple((n, int(n) if _INDEX.fullmatch(n) else -1) for n in names)

    def resolve(self, document: Any) -> Any:
        value = document
        for name, index in self.tokens:
            if type(value) is dict or isinstance(value, Mapping):
                value = value.get(name, _MISSING)
                if value is _MISSING:
                    return _MISSING
            elif _is_array(value):
                if not 0 <= index < len(value):
                    return _MISSING
                value = value[index]
            else:
                return _MISSING
        return value


def _op_test(op: str, operand: Any) -> Callable[[Any], bool]:
    """A test on the value found at a pointer (_MISSING when nothing is there)."""
    if op == "exists":
        return (lambda v: v is not _MISSING) if operand else (lambda v: v is _MISSING)
    if op == "eq":
        if isinstance(operand, str):
            return lambda v: isinstance(v, str) and v == operand
        return lambda v: v is not _MISSING and json_equal(v, operand)
    if op == "in":
        strings = frozenset(o for o in operand if isinstance(o, str))
        others = [o for o in operand if not isinstance(o, str)]
        return lambda v: v in strings if isinstance(v, str) else (
            v is not _MISSING and any(json_equal(v, o) for o in others))
    if op == "gt":
        return lambda v: _is_number(v) and v > operand
    if op == "lt":
        return lambda v: _is_number(v) and v < operand
    if op == "regex":
        search = re.compile(operand).search
        return lambda v: isinstance(v, str) and search(v) is not None
    raise ValueError(f"unknown argument test {op!r}")  # config.py refuses it first


_OP_WORDS = {"eq": "==", "in": "in", "gt": ">", "lt": "<", "regex": "=~"}


def _shown(value: Any) -> str:
    import json

    if value is _MISSING:
        return "missing"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Arg:
    __slots__ = ("ops", "pointer", "tests")

    def __init__(self, pointer: str, ops: Mapping[str, Any]) -> None:
        self.pointer = _Pointer(pointer)
        self.ops = tuple(ops.items())
        self.tests = tuple(_op_test(op, operand) for op, operand in self.ops)

    def __call__(self, call: Call) -> bool:
        value = self.pointer.resolve(call.arguments)
        for test in self.tests:
            if not test(value):
                return False
        return True

    def why(self, call: Call) -> str:
        value = self.pointer.resolve(call.arguments)
        where = f"argument {self.pointer.text or '(whole)'}"
        for (op, operand), test in zip(self.ops, self.tests, strict=True):
            if not test(value):
                if op == "exists":
                    return f"{where} is {'missing' if operand else 'present'}, wanted exists: {str(operand).lower()}"
                return f"{where} is {_shown(value)}, not {_OP_WORDS[op]} {_shown(operand)}"
        return f"{where} holds"

    def holds(self) -> str:
        return f"argument {self.pointer.text or '(whole)'} " + ", ".join(
            f"exists: {str(v).lower()}" if op == "exists" else f"{_OP_WORDS[op]} {_shown(v)}" for op, v in self.ops)


def _annotation(annotations: Mapping[str, Any], name: str) -> Any:
    """The annotation, or the MCP spec's default when the server gave none (the cautious reading)."""
    value = annotations.get(name, _MISSING)
    if value is not _MISSING:
        return value
    if name == "destructiveHint":
        return annotations.get("readOnlyHint") is not True
    return {"readOnlyHint": False, "idempotentHint": False, "openWorldHint": True}.get(name, _MISSING)


class _Annotations:
    __slots__ = ("want",)

    def __init__(self, want: Mapping[str, Any]) -> None:
        self.want = tuple(want.items())

    def __call__(self, call: Call) -> bool:
        for name, value in self.want:
            if not json_equal(_annotation(call.annotations, name), value):
                return False
        return True

    def why(self, call: Call) -> str:
        for name, value in self.want:
            got = _annotation(call.annotations, name)
            if not json_equal(got, value):
                default = "" if name in call.annotations or got is _MISSING else " (MCP default)"
                return f"annotation {name} is {_shown(got)}{default}, not {_shown(value)}"
        return "annotations hold"

    def holds(self) -> str:
        return "annotations " + ", ".join(f"{n}={_shown(v)}" for n, v in self.want)


class _Identity:
    __slots__ = ("match", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.match = _glob(pattern)

    def __call__(self, call: Call) -> bool:
        who = call.identity
        if who is None:
            return False
        for claim in ("subject", "email", "name"):
            value = who.get(claim)
            if isinstance(value, str) and self.match(value):
                return True
        return False

    def why(self, call: Call) -> str:
        if call.identity is None:
            return f"no caller identity (wanted {self.pattern!r})"
        return f"caller's subject, email and name do not match {self.pattern!r}"

    def holds(self) -> str:
        return f"identity matches {self.pattern!r}"


class _Groups:
    __slots__ = ("groups",)

    def __init__(self, groups: Sequence[str]) -> None:
        self.groups = frozenset(groups)

    def __call__(self, call: Call) -> bool:
        who = call.identity
        if who is None:
            return False
        theirs = who.get("groups")
        if not isinstance(theirs, (list, tuple)):
            return False
        return any(isinstance(g, str) and g in self.groups for g in theirs)

    def why(self, call: Call) -> str:
        if call.identity is None:
            return f"no caller identity (wanted a group of {', '.join(sorted(self.groups))})"
        return f"caller is in none of the groups {', '.join(sorted(self.groups))}"

    def holds(self) -> str:
        return f"caller in {', '.join(sorted(self.groups))}"


_Condition = _Annotations | _Identity | _Groups | _Arg


class _Compiled:
    """A rule ready to run: its server and tool tests (used by the index) and the rest, cheapest first."""

    __slots__ = ("conditions", "decision", "rule", "server", "tool")

    def __init__(self, rule: ApprovalRule, section: ApprovalConfig) -> None:
        self.rule = rule
        self.server = _glob(rule.server) if rule.server is not None else None
        self.tool = _glob(rule.tool) if rule.tool is not None else None
        conditions: list[_Condition] = []
        if rule.annotations:
            conditions.append(_Annotations(rule.annotations))
        if rule.identity is not None:
            conditions.append(_Identity(rule.identity))
        if rule.groups:
            conditions.append(_Groups(rule.groups))
        conditions += [_Arg(pointer, ops) for pointer, ops in rule.args.items()]
        self.conditions = tuple(conditions)
        needs = rule.action == "require_approval"
        reason = rule.reason
        if rule.action == "deny" and reason is None:
            reason = f"denied by relay's approval policy (rule {rule.index})"
        self.decision = Decision(
            action=rule.action, rule=rule, reason=reason, channels=rule.channels if needs else (),
            approvers=rule.approvers if needs else 0,
            timeout=rule.timeout if needs and rule.timeout is not None else section.timeout)

    def fits(self, server: str, tool: str) -> bool:
        return (self.server is None or self.server(server)) and (self.tool is None or self.tool(tool))


class Policy:
    """The `approvals` section compiled. `evaluate` runs on every tools/call, so it stays cheap."""

    def __init__(self, config: ApprovalConfig) -> None:
        self.config = config
        self._rules = tuple(_Compiled(rule, config) for rule in config.rules)
        reason = "no approval rule allows this call (approvals.default: deny)" if config.default == "deny" else None
        self._default = Decision(action=config.default, rule=None, reason=reason, channels=(), approvers=0,
                                 timeout=config.timeout)
        # The index: which rules a tool name can reach, by kind of tool pattern.
        self._exact: dict[str, list[int]] = {}  # "refund_payment"
        self._prefix: dict[str, list[int]] = {}  # "refund_*": a literal prefix, then one trailing star
        self._any: list[int] = []  # no tool pattern, or "*"
        self._other: list[int] = []  # any other glob ("*_delete", "get_?"), behind one combined regex
        for i, rule in enumerate(config.rules):
            pattern = rule.tool
            if pattern is None or pattern == "*":
                self._any.append(i)
            elif not _GLOB_CHARS.intersection(pattern):
                self._exact.setdefault(pattern, []).append(i)
            elif pattern.endswith("*") and not _GLOB_CHARS.intersection(pattern[:-1]):
                self._prefix.setdefault(pattern[:-1], []).append(i)
            else:
                self._other.append(i)
        self._prefix_lengths = sorted({len(p) for p in self._prefix})
        # One pass of the regex engine says whether any of the other globs can match a tool name at all.
        others = "|".join(f"(?:{fnmatch.translate(str(config.rules[i].tool))})" for i in self._other)
        self._other_any = re.compile(others).match if others else None
        self._cache: dict[str, dict[str, tuple[_Compiled, ...]]] = {}
        self._cached = 0

    def evaluate(self, call: Call) -> Decision:
        """The decision for a call: the first rule that matches it, else the default."""
        by_tool = self._cache.get(call.server)
        candidates = by_tool.get(call.tool) if by_tool is not None else None
        if candidates is None:
            candidates = self._remember(call.server, call.tool)
        for compiled in candidates:
            for condition in compiled.conditions:
                if not condition(call):
                    break
            else:
                return compiled.decision
        return self._default

    def explain(self, call: Call) -> list[str]:
        """For `relay policy test`: each rule, matched or the first condition it fails; then the decision."""
        lines: list[str] = []
        decision = self._default
        for compiled in self._rules:
            rule = compiled.rule
            head = f"rule {rule.index} (line {rule.line}, {rule.action})"
            if decision is not self._default:
                lines.append(f"{head}: not reached")
                continue
            why = self._why_not(compiled, call)
            if why is None:
                decision = compiled.decision
                lines.append(f"{head}: MATCH: {self._holds(compiled)}")
            else:
                lines.append(f"{head}: no: {why}")
        if not self._rules:
            lines.append("no rules")
        lines.append(f"decision: {decision.describe()}")
        return lines

    def _remember(self, server: str, tool: str) -> tuple[_Compiled, ...]:
        candidates = self._candidates(server, tool)
        if self._cached >= _CACHE_LIMIT:
            self._cache.clear()
            self._cached = 0
        self._cache.setdefault(server, {})[tool] = candidates
        self._cached += 1
        return candidates

    def _candidates(self, server: str, tool: str) -> tuple[_Compiled, ...]:
        """The rules whose server and tool patterns fit, in their order."""
        reach = list(self._exact.get(tool, ()))
        for n in self._prefix_lengths:
            if n > len(tool):
                break
            reach += self._prefix.get(tool[:n], ())
        reach += self._any
        if self._other_any is not None and self._other_any(tool) is not None:
            reach += self._other
        reach.sort()
        return tuple(self._rules[i] for i in reach if self._rules[i].fits(server, tool))

    @staticmethod
    def _why_not(compiled: _Compiled, call: Call) -> str | None:
        rule = compiled.rule
        if rule.server is not None and compiled.server is not None and not compiled.server(call.server):
            return f"server {call.server!r} {_is(rule.server, not_=True)} {rule.server!r}"
        if rule.tool is not None and compiled.tool is not None and not compiled.tool(call.tool):
            return f"tool {call.tool!r} {_is(rule.tool, not_=True)} {rule.tool!r}"
        for condition in compiled.conditions:
            if not condition(call):
                return condition.why(call)
        return None

    @staticmethod
    def _holds(compiled: _Compiled) -> str:
        rule = compiled.rule
        parts = [f"server {_is(rule.server)} {rule.server!r}" if rule.server is not None else "any server",
                 f"tool {_is(rule.tool)} {rule.tool!r}" if rule.tool is not None else "any tool"]
        parts += [c.holds() for c in compiled.conditions]
        return "; ".join(parts)
