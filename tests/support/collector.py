"""A test collector: a small, real HTTP server on loopback implementing docs/collector-protocol.md.

Relay ships to it over a real socket; it is a test double only because no production collector exists to run
here. It keeps records in memory and checks them the way the protocol asks a collector to (framing, contiguous
`seq`, the `prev` chain, the genesis certificate, signatures under the session key, nothing after the end),
is idempotent, answers 409 to a different record at a known `seq`, and counts how often each record arrived
and was stored. `stop()` and `start()` again on the same port play a collector that is down and comes back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relay.transcript.format import (
    FORMAT,
    RECORD_TAG,
    ZERO_HASH,
    FormatError,
    parse_body,
    record_hash,
    session_cert_input,
    split_line,
    unb64,
)

_RECORDS = re.compile(r"^/v1/sessions/([^/]+)/records$")
_SESSION = re.compile(r"^/v1/sessions/([^/]+)$")


@dataclass
class Held:
    """One session as the collector holds it."""

    lines: list[bytes] = field(default_factory=list)
    head: str = ZERO_HASH
    session_key: Ed25519PublicKey | None = None
    host_key: Ed25519PublicKey | None = None
    ended: bool = False


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class Collector:
    """The collector; `url` is its base URL (the `collector.url` to configure)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.sessions: dict[str, Held] = {}
        self.received: Counter[tuple[str, int]] = Counter()  # (session, seq): lines that arrived in a request
        self.stored: Counter[tuple[str, int]] = Counter()  # (session, seq): times the record was stored
        self.requests: list[Seen] = []
        # When set: answer 503 to record uploads once this many have been taken (a collector in trouble).
        self.unavailable_after: int | None = None
        self._taken = 0
        self._lock = threading.Lock()
        self._port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        assert self._port, "start the collector first"
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def lines(self, session: str) -> list[bytes]:
        with self._lock:
            held = self.sessions.get(session)
            return list(held.lines) if held else []

    def forget(self, session: str) -> None:
        """Lose a session, as a collector restored from an old backup would."""
        with self._lock:
            self.sessions.pop(session, None)

    def start(self) -> None:
        """Listen on 127.0.0.1: a free port the first time, the same port after a stop."""
        assert self._server is None
        server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Go down like a crashed collector: stop listening and cut every open connection."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(5)

    # -- the protocol -----------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}
        if method == "POST" and (m := _RECORDS.match(path)):
            if headers.get("content-type", "").split(";")[0].strip() != "application/x-ndjson":
                return 415, {"error": "expected application/x-ndjson"}
            with self._lock:
                if self.unavailable_after is not None and self._taken >= self.unavailable_after:
                    return 503, {"error": "unavailable"}
            try:
                answer = self._append(unquote(m.group(1)), body)
                with self._lock:
                    self._taken += 1
                return 200, answer
            except _Refused as exc:
                return exc.status, exc.body
        if method == "GET" and (m := _SESSION.match(path)):
            with self._lock:
                held = self.sessions.get(unquote(m.group(1)))
                return 200, {"seq": len(held.lines) if held else 0, "head": held.head if held else ZERO_HASH}
        return 404, {"error": "not found"}

    def _append(self, session: str, body: bytes) -> dict[str, Any]:
        if not body.endswith(b"\n"):
            raise _Refused(400, {"error": "the body must be complete lines, each ending in LF"})
        parsed: list[tuple[bytes, int, str, dict[str, Any], bytes, bytes]] = []
        for raw in body[:-1].split(b"\n"):
            try:
                rec_body, sig = split_line(raw)
                rec = parse_body(rec_body)
            except FormatError as exc:
                raise _Refused(400, {"error": f"malformed line: {exc}"}) from None
            parsed.append((raw + b"\n", rec["seq"], record_hash(rec_body, sig)[1], rec, rec_body, sig))
        for before, after in itertools.pairwise(parsed):
            if after[1] != before[1] + 1 or after[3]["prev"] != before[2]:
                raise _Refused(400, {"error": f"record {after[1]} does not follow record {before[1]}"})
        with self._lock:
            held = self.sessions.setdefault(session, Held())
            for line in parsed:
                self.received[(session, line[1])] += 1
            have = len(held.lines)
            state = {"seq": have, "head": held.head}
            if parsed[0][1] > have + 1:
                raise _Refused(422, {"error": "gap", **state})
            new = [line for line in parsed if line[1] > have]
            for raw, seq, *_ in parsed:
                if seq <= have and held.lines[seq - 1] != raw:
                    raise _Refused(409, {"error": "conflict", **state, "conflict": seq})
            if new and new[0][3]["prev"] != held.head:
                raise _Refused(409, {"error": "conflict", **state, "conflict": new[0][1]})
            # Check every new record before storing any: a request is taken whole or not at all.
            trial = Held(list(held.lines), held.head, held.session_key, held.host_key, held.ended)
            for _raw, seq, _hash, rec, rec_body, sig in new:
                _check(session, trial, seq, rec, rec_body, sig)
                trial.ended = rec["type"] in ("seal", "recovery")
            for raw, seq, hash_, *_ in new:
                trial.lines.append(raw)
                trial.head = hash_
                self.stored[(session, seq)] += 1
            self.sessions[session] = trial
            return {"seq": len(trial.lines), "head": trial.head}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with collector._lock:
                    collector._connections.add(self.connection)

            def finish(self) -> None:
                with collector._lock:
                    collector._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = collector._handle(self.command, self.path, headers, body)
                with collector._lock:
                    collector.requests.append(Seen(self.command, self.path, headers, status))
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if status == 401:
                    self.send_header("www-authenticate", "Bearer")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _check(session: str, held: Held, seq: int, rec: dict[str, Any], body: bytes, sig: bytes) -> None:
    """What a collector verifies of a new record beyond the chain: the genesis, signatures, the end."""
    if held.ended:
        raise _Refused(400, {"error": f"record {seq} follows the end of the session"})
    if seq == 1:
        if rec["type"] != "genesis" or rec.get("format") != FORMAT or rec.get("session") != session:
            raise _Refused(400, {"error": "record 1 is not this session's genesis"})
        try:
            session_key = unb64(str(rec.get("session_key")), 32)
            host_key = Ed25519PublicKey.from_public_bytes(unb64(str(rec.get("host_key")), 32))
            host_key.verify(unb64(str(rec.get("cert")), 64), session_cert_input(session, session_key))
        except (FormatError, InvalidSignature):
            raise _Refused(400, {"error": "the genesis certificate does not verify"}) from None
        held.session_key = Ed25519PublicKey.from_public_bytes(session_key)
        held.host_key = host_key
    key = held.host_key if rec["type"] == "recovery" else held.session_key
    assert key is not None
    try:
        key.verify(sig, RECORD_TAG + record_hash(body, sig)[0])
    except InvalidSignature:
        raise _Refused(400, {"error": f"record {seq}: bad signature"}) from None


@contextlib.contextmanager
def running_collector(token: str | None = None) -> Iterator[Collector]:
    collector = Collector(token)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()
