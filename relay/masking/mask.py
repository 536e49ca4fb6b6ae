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
from relay.masking.detect import may_contain, scan, sensitive_key
from relay.masking.modes import PanMode, mask_pan, redact_sad

# Protocol fields that identify messages rather than carry data: masking them would break correlation.
_TOP_SKIP = frozenset({"jsonrpc", "id", "method"})
_PARAM_SKIP = frozenset({"progressToken", "requestId"})
_DIGIT = re.compile(r"\d")
# Every key detect.sensitive_key() accepts contains one of these (a superset: a false hit only costs a walk).
_SAD_KEY_WORDS = ("cv", "csc", "cav", "pin", "securit", "verif", "valid", "identif", "cid", "code")


def _sad_key_hint(text: str) -> bool:
    # Plain substring tests on the lower-cased text: far faster than a case-insensitive regex alternation.
    lowered = text.lower()
    return any(word in lowered for word in _SAD_KEY_WORDS)
_TEXT_MIME = re.compile(r"^(text/|application/(json|xml|csv|x-ndjson|yaml|x-yaml|javascript)|.*\+(json|xml)$)", re.I)


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


def _pointer(parent: str, key: str | int) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


class Masker:
    def __init__(self, policy: MaskPolicy) -> None:
        self.policy = policy
        self._patterns = [r for r in policy.rules if r.pattern is not None]
        self._key_rules = {k: r for r in policy.rules for k in r.keys}

    # -- messages -------------------------------------------------------------------------------------

    def message(self, msg: Message) -> tuple[Message, list[dict[str, Any]]]:
        """The masked message (the same object when nothing was found) and what was masked where."""
        # The pre-filter reads the raw text once. It must let through everything a detector could act on:
        # base64 blobs hide their text from it, and a CVV or PIN key marks its value whatever the value is.
        raw = msg.raw.decode("utf-8")
        if (not self._key_rules and b'"blob"' not in msg.raw and not _sad_key_hint(raw)
                and not self._may_contain(raw)):
            return msg, []
        actions: dict[tuple[str, str], int] = {}
        obj = msg.obj
        if isinstance(obj, list):
            new: Any = [self._message_obj(item, f"/{i}", actions) for i, item in enumerate(obj)]
            changed = any(a is not b for a, b in zip(new, obj, strict=True))
        else:
            new = self._message_obj(obj, "", actions)
            changed = new is not obj
        if not changed:
            return msg, []
        return msg.replace(new), [{"rule": r, "pointer": p, "count": n} for (r, p), n in actions.items()]

    def _message_obj(self, obj: Any, base: str, actions: dict[tuple[str, str], int]) -> Any:
        if not isinstance(obj, dict):
            return obj
        out: dict[str, Any] | None = None
        for key, value in obj.items():
            if key in _TOP_SKIP:
                continue
            if key == "params" and isinstance(value, dict):
                new = self._dict(value, _pointer(base, key), actions, skip=_PARAM_SKIP)
            else:
                new = self._value(value, _pointer(base, key), actions)
            if new is not value:
                if out is None:
                    out = dict(obj)
                out[key] = new
        return obj if out is None else out

    # -- values ---------------------------------------------------------------------------------------

    def _may_contain(self, text: str) -> bool:
        # Card data of every kind (PAN, track, CVV, PIN block) has digits: most strings stop at this C-speed test.
        if self._patterns:
            if any(r.pattern.search(text) for r in self._patterns if r.pattern is not None):
                return True
        return _DIGIT.search(text) is not None and may_contain(text)

    def _value(self, value: Any, pointer: str, actions: dict[tuple[str, str], int]) -> Any:
        if isinstance(value, str):
            return self.text(value, pointer, actions) if self._may_contain(value) else value
        if isinstance(value, dict):
            return self._dict(value, pointer, actions)
        if isinstance(value, list):
            out: list[Any] | None = None
            for i, item in enumerate(value):
                new = self._value(item, _pointer(pointer, i), actions)
                if new is not item:
                    if out is None:
                        out = list(value)
                    out[i] = new
            return value if out is None else out
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, float):
            if not (value.is_integer() and 1e11 <= abs(value) < 1e19):
                return value
            value = int(value)
        if isinstance(value, int) and 10**11 <= value < 10**19:
            # A PAN written as a JSON number becomes a masked string: a number cannot hold the mask.
            text = str(value)
            masked = self.text(text, pointer, actions)
            return masked if masked != text else value
        return value

    def _dict(self, obj: dict[str, Any], pointer: str, actions: dict[tuple[str, str], int],
              skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        renamed = False
        items = []
        blob_mime = obj.get("mimeType") if isinstance(obj.get("blob"), str) else None
        for key, value in obj.items():
            new_key = key
            if self._may_contain(key):
                new_key = self.text(key, _pointer(pointer, key), actions)
                renamed = renamed or new_key != key
            here = _pointer(pointer, key)
            if key in skip:
                new = value
            elif (kind := sensitive_key(key)) is not None and _has_value(value):
                new = redact_sad(kind)
                _count(actions, kind, here)
            elif self._key_rules and (rule := self._key_rules.get(normalise_key(key))) is not None and _has_value(value):
                new = rule.replace
                _count(actions, rule.name, here)
            elif key == "blob" and isinstance(blob_mime, str) and _TEXT_MIME.match(blob_mime):
                new = self._blob(value, here, actions)
            else:
                new = self._value(value, here, actions)
            items.append((new_key, new))
            if new is not value and out is None:
                out = {}
        if out is None and not renamed:
            return obj
        return dict(items)

    def _blob(self, value: str, pointer: str, actions: dict[tuple[str, str], int]) -> str:
        """Text carried as base64 (resources with a text-like MIME type): decoded, masked, encoded again."""
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return value  # not text after all: nothing the text detectors could read
        if not self._may_contain(text):
            return value
        masked = self.text(text, pointer, actions)
        return value if masked == text else base64.b64encode(masked.encode("utf-8")).decode("ascii")

    def text(self, text: str, pointer: str, actions: dict[tuple[str, str], int]) -> str:
        findings = scan(text)
        if findings:
            parts: list[str] = []
            last = 0
            mode, key = self.policy.pan_mode, self.policy.token_key
            for f in findings:
                parts.append(text[last:f.start])
                original = text[f.start:f.end]
                parts.append(mask_pan(original, f.digits, mode, key) if f.kind == "pan" else redact_sad(f.kind))
                _count(actions, f.kind, pointer)
                last = f.end
            parts.append(text[last:])
            text = "".join(parts)
        for rule in self._patterns:
            assert rule.pattern is not None
            text, n = rule.pattern.subn(rule.replace, text)
            if n:
                _count(actions, rule.name, pointer, n)
        return text


def _has_value(value: Any) -> bool:
    return value is not None and not isinstance(value, bool) and value != ""


def _count(actions: dict[tuple[str, str], int], rule: str, pointer: str, n: int = 1) -> None:
    actions[(rule, pointer)] = actions.get((rule, pointer), 0) + n
