"""Real processes for integration tests: MCP servers on loopback and a raw JSON-RPC driver for `relay run`.

Everything binds 127.0.0.1. Each helper is a context manager that kills and reaps what it started.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "tests" / "servers"
RELAY = [sys.executable, "-m", "relay"]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class _Lines:
    """Reads a pipe in a thread so tests can wait for a line with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.q: queue.Queue[bytes | None] = queue.Queue()
        self.seen: list[bytes] = []
        t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        t.start()

    def _pump(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.q.put(line)
        self.q.put(None)

    def get(self, timeout: float) -> bytes | None:
        line = self.q.get(timeout=timeout)
        if line is not None:
            self.seen.append(line)
        return line


@contextmanager
def sdk_server(transport: str, *extra: str, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """tests/servers/sdk_server.py over HTTP; yields (url, process) once it prints READY."""
    args = [PY, str(SERVERS / "sdk_server.py"), "--transport", transport, "--port", str(port or 0), *extra]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    lines = _Lines(proc.stderr)
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"sdk_server exited: {b''.join(lines.seen).decode(errors='replace')}")
            m = re.match(rb"READY (\S+)", line)
            if m:
                url = m.group(1).decode()
        assert url is not None, "sdk_server did not become ready"
        yield url, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def relay_env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment that keeps relay's state, config and logs inside the test's tmp folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "XDG_"))}
    # No OS keyring service runs here: the host signing key goes to relay's opt-in 0600 file store.
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), XDG_STATE_HOME=str(tmp / "state"),
               XDG_RUNTIME_DIR=str(tmp / "run"), PYTHONUNBUFFERED="1", RELAY_KEY_STORE="file")
    env.update(extra)
    return env


class RawClient:
    """Speaks newline-delimited JSON-RPC to a process's stdio, byte-exact, with timeouts."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd or ROOT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._out = _Lines(self.proc.stdout)
        self._err_chunks: list[bytes] = []
        self._err_thread = threading.Thread(target=self._read_err, daemon=True)
        self._err_thread.start()
        self._next = 0

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self._err_chunks.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._err_chunks).decode("utf-8", "replace")

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj: Any) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv_raw(self, timeout: float = 20.0) -> bytes:
        line = self._out.get(timeout)
        if line is None:
            raise EOFError(f"stdout closed; stderr:\n{self.stderr}")
        return line

    def recv(self, timeout: float = 20.0) -> Any:
        return json.loads(self.recv_raw(timeout))

    def request(self, method: str, params: Any = None, timeout: float = 20.0) -> Any:
        """Send a request and return its response, collecting what came before it in `self.other`."""
        self._next += 1
        id_ = self._next
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        self.other: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            got = self.recv(max(0.1, deadline - time.monotonic()))
            if isinstance(got, dict) and got.get("id") == id_ and "method" not in got:
                return got
            self.other.append(got)

    def initialize(self, version: str = "2025-06-18", capabilities: dict[str, Any] | None = None) -> Any:
        resp = self.request("initialize", {"protocolVersion": version, "capabilities": capabilities or {},
                                           "clientInfo": {"name": "relay-tests", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return resp

    def close(self, timeout: float = 20.0) -> int:
        """Close stdin (the MCP way to end a session) and return the exit code."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            self._err_thread.join(2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
