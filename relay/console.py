"""The one place that talks to people: logging set-up and the rich Console, both on stderr.

Log records pass through a redacting filter so that a token or card number that slips into a message
never reaches the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

_SECRET_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)((?:access|refresh|id)_token|client_secret|password|api[_-]?key|authorization)"
                r"([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"), r"\1\2[redacted]"),
    # Digit runs long enough to be a card number, however grouped.
    (re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)"), "[digits redacted]"),
]


def shown(text: str) -> str:
    """Text from an agent or a server, made safe to put on a person's terminal: a control character or a bidi
    override could rewrite what an approver sees, so each is shown escaped (\\x1b, \\u202e)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def redact(text: str) -> str:
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["error"] = redact(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"relay: {record.levelname.lower()}: {record.getMessage()}"


LEVELS = ("debug", "info", "warning", "error")


def setup_logging(level: str = "warning", fmt: str = "text") -> None:
    root = logging.getLogger("relay")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


@cache
def console() -> Console:
    """The rich Console for human output. Always stderr: stdout belongs to the protocol."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """A one-line diagnosis for a person."""
    from rich.markup import escape

    console().print(f"[bold red]relay: error:[/] {escape(redact(message))}", soft_wrap=True)
