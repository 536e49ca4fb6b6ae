"""Helpers for tests that read or write transcripts: a recorder on a throwaway host key, and record readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay.transcript.format import member_text, split_line
from relay.transcript.recorder import Recorder
from relay.transcript.writer import SessionWriter, WriterOptions

SERVER = {"name": "srv", "transport": "stdio", "command": "srv"}


def recorder(directory: Path, session: str = "s", *, key: Ed25519PrivateKey | None = None,
             fsync: str = "interval", unsafe_continue: bool = False) -> Recorder:
    key = key or Ed25519PrivateKey.generate()
    writer = SessionWriter(directory, session, SERVER, key, WriterOptions(fsync=fsync))
    return Recorder(writer, key, unsafe_continue=unsafe_continue)


def bodies(path: Path) -> list[str]:
    return [split_line(line)[0].decode("utf-8") for line in path.read_bytes().splitlines()]


def records(path: Path) -> list[dict[str, Any]]:
    """Each record's body, with the exact text of its message (if any) under "message"."""
    out = []
    for body in bodies(path):
        rec = json.loads(body)
        if "message" in rec:
            rec["message"] = member_text(body, "message")
        elif "message_text" in rec:  # a message with line breaks, recorded as a string
            rec["message"] = rec.pop("message_text")
        out.append(rec)
    return out


def message_texts(path: Path) -> list[str]:
    """The exact text of every recorded message, in order."""
    return [r["message"] for r in records(path) if r["type"] == "message"]
