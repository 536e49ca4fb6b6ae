"""Masking a whole JSON-RPC message: walk every string, key and number, replace what the detectors find.

The message is left as it is (the same object, its bytes untouched) unless something is found. Each
masking action is reported as metadata (rule, JSON pointer, count), never with the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from relay.jsonrpc import Message
from relay.masking.detect import Finding, may_contain, scan, scan_many, sensitive_key
from relay.masking.modes import PanMode, mask_pan, mask_pans_last4, redact_sad

# Protocol fields that identify messages rather than carry data: masking them would break correlation.
_TOP_SKIP = frozenset({"jsonrpc", "id", "method"})
_PARAM_SKIP = frozenset({"progressToken", "requestId"})
# Every key detect.sensitive_key() accepts contains one of these (a superset: a false hit only costs a walk).
_SAD_KEY_WORDS = ("cv", "csc", "cav", "pin", "securit", "verif", "valid", "identif", "cid", "code")
# A number written with an exponent ("4.111111111111111e+18"): its digits are not in the raw text as such.
_EXPONENT = re.compile(r"[0-9][eE][+\-]?[0-9]")


def _sad_key_hint(text: str) -> bool:
    # Plain substring tests on the lower-cased text: far faster than a case-insensitive regex alternation.
    lowered = text.lower()
    return any(word in lowered for word in _SAD_KEY_WORDS)


_TEXT_MIME = re.compile(
    r"^(text/|application/(json|xml|csv|x-ndjson|yaml|x-yaml|javascript)|.*\+(json|xml)$)", re.I
)

# How a message is masked, in two walks over the parsed message that meet the same texts in the same order
# (strings, keys, big integers as digits, text-like base64 blobs decoded):
#
# 1. _gather... collects the texts, and notes the values that go whatever the texts hold (SAD keys, key
#    rules). Both walks ask _key_action what happens to each value.
# 2. detect.scan_many reads all the texts in one pass (thousands of short strings cost little more than
#    one long one), and custom regex rules are tried on each text.
# 3. Only when something was found, _Rebuild walks again, copying the containers on the way to each change
#    and counting actions under JSON pointers (made only then); it finds each text's findings by index.
#
# Before all that, a message whose raw text has no backslash and nothing a detector could act on is passed
# as it is: without escapes every string and key is in the raw text as it stands, so detect.may_contain
# over the raw text speaks for all of them.

_Path = tuple[Any, ...]  # (parent path, key) pairs down from (); a JSON pointer is made only for an action


@dataclass(frozen=True)
class CustomRule:
    """An organisation's own sensitive data: a regex with its replacement, or JSON keys whose values go."""

    name: str
    replace: str
    pattern: re.Pattern[str] | None = None
    keys: frozenset[str] = frozenset()  # normalised key names (see normalise_key)


def normalise_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class MaskPolicy:
    pan_mode: PanMode = "last4"
    rules: tuple[CustomRule, ...] = ()
    token_key: bytes | None = field(default=None, repr=False)


def _pointer(path: _Path) -> str:
    keys: list[str] = []
    while path:
        path, key = path
        keys.append(str(key).replace("~", "~0").replace("/", "~1"))
    return "".join(f"/{k}" for k in reversed(keys))


class Masker:
    def __init__(self, policy: MaskPolicy) -> None:
        self.policy = policy
        self._patterns = [r.pattern for r in policy.rules if r.pattern is not None]
        self._pattern_rules = [(r.name, r.replace, r.pattern) for r in policy.rules if r.pattern is not None]
        self._key_rules = {k: r for r in policy.rules for k in r.keys}

    # -- messages -------------------------------------------------------------------------------------

    def message(self, msg: Message) -> tuple[Message, list[dict[str, Any]]]:
        """The masked message (the same object when nothing was found) and what was masked where."""
        if self._passes_as_it_is(msg.raw):
            return msg, []
        texts: list[str] = []
        obj = msg.obj
        forced = False
        for item in obj if isinstance(obj, list) else [obj]:
            forced = self._gather_message(item, texts) or forced
        found = scan_many(texts)
        if self._patterns:
            for i, text in enumerate(texts):
                if i not in found and any(p.search(text) for p in self._patterns):
                    found[i] = []
        if not found and not forced:
            return msg, []
        walk = _Rebuild(self, found)
        if isinstance(obj, list):
            new: Any = [walk.message(item, ((), i)) for i, item in enumerate(obj)]
            changed = any(a is not b for a, b in zip(new, obj, strict=True))
        else:
            new = walk.message(obj, ())
            changed = new is not obj
        if not changed:
            return msg, []
        return msg.replace(new), [{"rule": r, "pointer": p, "count": n} for (r, p), n in walk.actions.items()]

    def _passes_as_it_is(self, raw: bytes) -> bool:
        if self._key_rules or self._patterns or b"\\" in raw or b'"blob"' in raw:
            return False
        text = raw.decode("utf-8")
        return not may_contain(text) and not _sad_key_hint(text) and not _EXPONENT.search(text)

    # -- walk 1: the texts ----------------------------------------------------------------------------

    def _gather_message(self, obj: Any, texts: list[str]) -> bool:
        if not isinstance(obj, dict):
            return False
        forced = False
        for key, value in obj.items():
            if key in _TOP_SKIP:
                continue
            if key == "params" and isinstance(value, dict):
                forced = self._gather_dict(value, texts, _PARAM_SKIP) or forced
            else:
                forced = self._gather(value, texts) or forced
        return forced

    def _gather(self, value: Any, texts: list[str]) -> bool:
        """Appends the texts in `value` to `texts`; True if a value goes whatever they hold."""
        if isinstance(value, str):
            texts.append(value)
            return False
        if isinstance(value, dict):
            return self._gather_dict(value, texts)
        if isinstance(value, list):
            forced = False
            append = texts.append
            for item in value:
                if isinstance(item, str):
                    append(item)
                elif isinstance(item, (dict, list)):
                    forced = self._gather(item, texts) or forced
                elif (digits := _number_text(item)) is not None:
                    append(digits)
            return forced
        if (digits := _number_text(value)) is not None:
            texts.append(digits)
        return False

    def _gather_dict(self, obj: dict[str, Any], texts: list[str], skip: frozenset[str] = frozenset()) -> bool:
        forced = False
        append = texts.append
        plain_keys = not skip and not self._key_rules
        for key, value in obj.items():
            append(key)
            # Most keys: their value is read as it is (the test is _key_action's, in short).
            if plain_keys and key != "blob" and sensitive_key(key) is None:
                action = _VALUE
            else:
                action = self._key_action(obj, key, value, skip)
            if action is _VALUE:
                if isinstance(value, str):
                    append(value)
                elif isinstance(value, (dict, list)):
                    forced = self._gather(value, texts) or forced
                elif (digits := _number_text(value)) is not None:
                    append(digits)
            elif action is _BLOB:
                if (text := _blob_text(value)) is not None:
                    append(text)
            elif action is not _KEEP:
                forced = True
        return forced

    def _key_action(self, obj: dict[str, Any], key: str, value: Any, skip: frozenset[str]) -> Any:
        """What happens to obj[key]: _KEEP, _VALUE (its texts are read), _BLOB, a SAD kind, or a CustomRule.
        Both walks ask this, so that they meet the same texts."""
        if key in skip:
            return _KEEP
        if (kind := sensitive_key(key)) is not None and _has_value(value):
            return kind
        if (
            self._key_rules
            and (rule := self._key_rules.get(normalise_key(key))) is not None
            and _has_value(value)
        ):
            return rule
        if key == "blob" and isinstance(value, str):
            mime = obj.get("mimeType")
            if isinstance(mime, str) and _TEXT_MIME.match(mime):
                return _BLOB
        return _VALUE

    # -- text -----------------------------------------------------------------------------------------

    def text(self, text: str, pointer: str, actions: dict[tuple[str, str], int]) -> str:
        return self._masked(text, scan(text), pointer, actions)

    def _masked(
        self, text: str, findings: list[Finding], pointer: str, actions: dict[tuple[str, str], int]
    ) -> str:
        if findings:
            mode = self.policy.pan_mode
            # Card-dense text: all PANs at once, when they are written plainly (see mask_pans_last4).
            masked = mask_pans_last4(text, findings) if mode == "last4" else None
            if masked is None:
                masked = _masked_one_by_one(text, findings, mode, self.policy.token_key)
                kinds = [f.kind for f in findings]
                for kind in dict.fromkeys(kinds):  # in the order first found, as the report lists them
                    _count(actions, kind, pointer, kinds.count(kind))
            else:
                _count(actions, "pan", pointer, len(findings))  # all of them PANs
            text = masked
        for name, replace, pattern in self._pattern_rules:
            text, n = pattern.subn(replace, text)
            if n:
                _count(actions, name, pointer, n)
        return text


def _masked_one_by_one(text: str, findings: list[Finding], mode: PanMode, key: bytes | None) -> str:
    parts: list[str] = []
    append = parts.append
    last = 0
    for start, end, kind, digits in findings:
        append(text[last:start])
        append(mask_pan(text[start:end], digits, mode, key) if kind == "pan" else redact_sad(kind))
        last = end
    append(text[last:])
    return "".join(parts)


# _key_action's answers besides a SAD kind or a rule.
_KEEP = object()
_VALUE = object()
_BLOB = object()


class _Rebuild:
    """Walk 2: the message with every change made, and the actions, from the findings of each text."""

    def __init__(self, masker: Masker, found: dict[int, list[Finding]]) -> None:
        self.masker = masker
        self.found = found
        self.index = 0  # of the next text, in walk 1's order
        self.actions: dict[tuple[str, str], int] = {}

    def message(self, obj: Any, path: _Path) -> Any:
        if not isinstance(obj, dict):
            return obj
        out: dict[str, Any] | None = None
        for key, value in obj.items():
            if key in _TOP_SKIP:
                continue
            if key == "params" and isinstance(value, dict):
                new = self.mapping(value, (path, key), _PARAM_SKIP)
            else:
                new = self.value(value, (path, key))
            if new is not value:
                if out is None:
                    out = dict(obj)
                out[key] = new
        return obj if out is None else out

    def text(self, text: str, path: _Path) -> str:
        findings = self.found.get(self.index)
        self.index += 1
        if findings is None:
            return text
        masked = self.masker._masked(text, findings, _pointer(path), self.actions)
        return text if masked == text else masked

    def value(self, value: Any, path: _Path) -> Any:
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, dict):
            return self.mapping(value, path)
        if isinstance(value, list):
            out: list[Any] | None = None
            for i, item in enumerate(value):
                new = self.value(item, (path, i))
                if new is not item:
                    if out is None:
                        out = list(value)
                    out[i] = new
            return value if out is None else out
        if (digits := _number_text(value)) is not None:
            # A PAN written as a JSON number becomes a masked string: a number cannot hold the mask.
            masked = self.text(digits, path)
            return masked if masked != digits else value
        return value

    def mapping(self, obj: dict[str, Any], path: _Path, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        changed = False
        items = []
        for key, value in obj.items():
            new_key = self.text(key, (path, key))
            here = (path, key)
            new: Any = value
            action = self.masker._key_action(obj, key, value, skip)
            if action is _VALUE:
                new = self.value(value, here)
            elif action is _BLOB:
                new = self.blob(value, here)
            elif isinstance(action, CustomRule):
                new = action.replace
                _count(self.actions, action.name, _pointer(here))
            elif isinstance(action, str):
                new = redact_sad(action)
                _count(self.actions, action, _pointer(here))
            items.append((new_key, new))
            changed = changed or new is not value or new_key != key
        return dict(items) if changed else obj

    def blob(self, value: str, path: _Path) -> str:
        """Text carried as base64 (resources with a text-like MIME type): decoded, masked, encoded again."""
        text = _blob_text(value)
        if text is None:
            return value  # not text after all: nothing the text detectors could read
        masked = self.text(text, path)
        return value if masked == text else base64.b64encode(masked.encode("utf-8")).decode("ascii")


def _blob_text(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _number_text(value: Any) -> str | None:
    """The digits of a JSON number that could be a PAN (12 to 19 digits), else None."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float):
        if not (value.is_integer() and 1e11 <= abs(value) < 1e19):
            return None
        value = int(value)
    return str(value) if 10**11 <= value < 10**19 else None


def _has_value(value: Any) -> bool:
    return value is not None and not isinstance(value, bool) and value != ""


def _count(actions: dict[tuple[str, str], int], rule: str, pointer: str, n: int = 1) -> None:
    actions[(rule, pointer)] = actions.get((rule, pointer), 0) + n
