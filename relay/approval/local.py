"""The local approval channel: a per-user Unix socket for each relay session, and the client side that
`relay approvals` / `relay approve` / `relay deny` use. It works when relay has no terminal of its own (spawned
by an assistant): the person approves from any terminal of the same user.

The socket is 0600 in a 0700 directory under $XDG_RUNTIME_DIR; the approver is the socket peer's OS user
(SO_PEERCRED). One JSON object per line each way: {"op": "list"} and {"op": "decide", "id", "digest",
"approve", "reason"}.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream

from relay import paths
from relay.approval.broker import Broker, DecisionRefused

log = logging.getLogger("relay.approval")
MAX_LINE = 64 * 1024


SUN_PATH_MAX = 100  # sun_path holds 104-108 bytes, depending on the OS


def socket_dir() -> Path:
    """Where sessions' sockets live; a short stand-in under /tmp when the runtime dir is too deep for a socket
    path (the same for every process of the user that sees the same runtime dir)."""
    directory = paths.runtime_dir() / "approvals"
    if len(os.fsencode(directory)) + len("/20261125T000000Z-00000000.sock") <= SUN_PATH_MAX:
        return directory
    import hashlib

    tag = hashlib.sha256(os.fsencode(directory)).hexdigest()[:12]
    return Path("/tmp") / f"relay-{os.getuid()}-{tag}"


@contextlib.asynccontextmanager
async def serve_local(broker: Broker, session_id: str) -> AsyncIterator[Path]:
    """Listen for approvers on this session's socket for the duration of the block."""
    directory = paths.private_dir(socket_dir())
    path = directory / f"{session_id}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = await anyio.create_unix_listener(path)
    os.chmod(path, 0o600)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, lambda stream: _handle(stream, broker))
            try:
                yield path
            finally:
                tg.cancel_scope.cancel()
    finally:
        await listener.aclose()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _peer_user(stream: SocketStream) -> str:
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


async def _handle(stream: SocketStream, broker: Broker) -> None:
    async with stream:
        try:
            with anyio.fail_after(10):
                line = await _read_line(stream)
                answer = _answer(json.loads(line), broker, _peer_user(stream))
        except (ValueError, TimeoutError, anyio.EndOfStream, OSError) as exc:
            answer = {"error": f"bad request: {type(exc).__name__}"}
        with contextlib.suppress(OSError, anyio.BrokenResourceError):
            await stream.send(json.dumps(answer).encode() + b"\n")


def _answer(request: Any, broker: Broker, user: str) -> dict[str, Any]:
    if not isinstance(request, dict):
        return {"error": "expected a JSON object"}
    op = request.get("op")
    if op == "list":
        return {"pending": [r.public() for r in broker.pending("local")]}
    if op == "decide":
        try:
            verdict = broker.decide(str(request.get("id")), str(request.get("digest")),
                                    approve=request.get("approve") is True, approver=user,
                                    reason=request.get("reason") if isinstance(request.get("reason"), str) else None,
                                    channel="local", identity={"user": user}, self_approval=True)
        except DecisionRefused as exc:
            return {"error": str(exc)}
        return {"ok": True, "decided": verdict is not None}
    return {"error": f"unknown op {op!r}"}


async def _read_line(stream: SocketStream) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive()
        data += chunk
        if len(data) > MAX_LINE:
            raise ValueError("request too long")
    return data.split(b"\n", 1)[0]


# -- the client side (relay approvals / approve / deny) ------------------------------------------------------


async def ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(10):
        async with await anyio.connect_unix(path) as stream:
            await stream.send(json.dumps(request).encode() + b"\n")
            answer = json.loads(await _read_line(stream))
    if not isinstance(answer, dict):
        raise ValueError("not a JSON object")
    return answer


async def pending_everywhere() -> list[tuple[Path, dict[str, Any]]]:
    """Every pending request of every relay session of this user, with the socket that holds it."""
    out: list[tuple[Path, dict[str, Any]]] = []
    directory = socket_dir()
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.sock")):
        try:
            answer = await ask(path, {"op": "list"})
        except (OSError, ValueError, TimeoutError):
            continue  # a relay that is gone (its socket left behind by a crash)
        for item in answer.get("pending", []):
            if isinstance(item, dict):
                out.append((path, item))
    return out
