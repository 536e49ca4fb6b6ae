"""The session writer: appends signed, hash-chained records to one session file (docs/transcript-format.md).

Each record reaches the OS before the message it records is forwarded (write-ahead); fsync follows the policy
(`always`, or group commit on an interval). The session key lives only in this object and is dropped at the seal.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import platform
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import SigningKey

from relay import __version__
from relay.errors import GuardError
from relay.paths import private_dir
from relay.transcript import ledger
from relay.transcript.format import (
    FORMAT,
    ZERO_HASH,
    Signer,
    b64,
    body_head,
    dumps,
    public_bytes,
    seal_line,
    session_cert_input,
)


def new_session_id() -> str:
    """Sortable by start time, unique without coordination."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


@dataclass(frozen=True)
class WriterOptions:
    fsync: str = "interval"  # "always" | "interval"
    fsync_interval: float = 0.1
    identity: dict[str, Any] | None = None


class SessionWriter:
    """One session's transcript file. `write` raises GuardError when a record cannot be written."""

    def __init__(self, directory: Path, session_id: str, server: dict[str, Any], host_key: Ed25519PrivateKey,
                 options: WriterOptions = WriterOptions()) -> None:
        self.directory = directory
        self.path = directory / f"{session_id}.jsonl"
        self.session_id = session_id
        self.options = options
        self._always = options.fsync == "always"
        self._dirty = False  # written, not yet flushed
        self._kick: anyio.Event | None = None  # wakes the group commit after an idle spell
        self.seq = 0
        self.head = ZERO_HASH
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            private_dir(directory)
            self._fd: int | None = os.open(self.path, flags, 0o600)
            # Held for the session's life: the next relay start recovers only files whose writer is gone.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise GuardError(f"cannot create transcript {self.path}: {exc.strerror or exc}") from None
        # The session key signs on the hot path, so it signs with libsodium (PyNaCl): ~15 us a signature where
        # OpenSSL takes ~25 us here. Ed25519 signatures are deterministic (RFC 8032): the same bytes either way.
        session_key = SigningKey.generate()
        self._sign: Signer | None = _signer(session_key)
        session_pub = bytes(session_key.verify_key)
        fsync = "always" if self._always else f"interval:{round(options.fsync_interval * 1000)}"
        try:
            marker = ledger.open_marker(directory, session_id)  # before the genesis: a crash from here on is found
            private_dir(marker.parent)
            marker.touch(mode=0o600)
            genesis_hash = self.write("genesis", {
                "format": FORMAT, "session": session_id, "relay": __version__, "host": platform.node(),
                "user": _user(), "pid": os.getpid(), "identity": options.identity, "server": server,
                "session_key": b64(session_pub), "host_key": b64(public_bytes(host_key.public_key())),
                "cert": b64(host_key.sign(session_cert_input(session_id, session_pub))), "fsync": fsync,
            })
            self.sync()
            ledger.append(directory, host_key, "open", {"session": session_id, "genesis": genesis_hash})
        except BaseException as exc:
            self._abandon()
            with contextlib.suppress(OSError):
                ledger.open_marker(directory, session_id).unlink()
            with contextlib.suppress(OSError):
                self.path.unlink()  # nothing was relayed: no half-born session for verify to trip on
            if isinstance(exc, OSError):
                raise GuardError(f"cannot start transcript {self.path}: {exc.strerror or exc}") from None
            raise

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, type_: str, fields: dict[str, Any], message: bytes | None = None) -> str:
        """Append one record; returns its hash. Only a record that reached the file takes a number."""
        return self.write_members(type_, dumps(fields)[1:-1] if fields else "", message)

    def write_members(self, type_: str, members: str, message: bytes | None = None) -> str:
        """`write`, the record's own members given as JSON text (`"a":1,"b":"x"`, no braces; "" for none)."""
        fd, sign = self._fd, self._sign
        if fd is None or sign is None:
            raise GuardError("the transcript is closed")
        seq = self.seq + 1
        head = body_head(seq, self.head, type_)
        if members:
            head = head + "," + members
        if message is None:
            body = (head + "}").encode("utf-8")
        elif b"\n" in message or b"\r" in message:
            # Pretty-printed JSON (from some HTTP servers) cannot sit inside one line as it is: as a string.
            body = (head + ',"message_text":' + dumps(message.decode("utf-8")) + "}").encode("utf-8")
        else:
            # The message goes in as the JSON it is, byte for byte: no second encoding on the hot path.
            body = b"".join(((head + ',"message":').encode("utf-8"), message, b"}"))
        line, digest = seal_line(body, sign)
        self._append(fd, line)
        self.seq, self.head = seq, digest
        if self._always:
            self.sync()
        elif not self._dirty:
            self._dirty = True
            if self._kick is not None:
                self._kick.set()
        return digest

    def _append(self, fd: int, line: bytes) -> None:
        written = 0
        try:
            written = os.write(fd, line)  # one write(2) a record, unless the OS takes less
            while written < len(line):
                written += os.write(fd, memoryview(line)[written:])
        except OSError as exc:
            if written:
                # Never leave a torn line for the next record to be glued onto.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
            raise GuardError(f"cannot write transcript {self.path}: {exc.strerror or exc}") from None

    def sync(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise GuardError(f"cannot flush transcript {self.path}: {exc.strerror or exc}") from None
        self._dirty = False

    async def run_group_commit(self) -> None:
        """For fsync "interval": flush at most `fsync_interval` after a write, in a worker thread, until cancelled
        or sealed. Sleeps while nothing is written (no wake-up every interval on an idle session)."""
        if self._always:
            return
        try:
            while self._fd is not None:
                kick = self._kick = anyio.Event()
                if not self._dirty:
                    await kick.wait()
                await anyio.sleep(self.options.fsync_interval)
                fd = self._fd
                if fd is None:
                    return
                self._dirty = False  # before the fsync: a record written while it runs waits for the next one
                with contextlib.suppress(OSError):  # a failing disk shows at the next write or the seal
                    await anyio.to_thread.run_sync(os.fsync, fd)
        finally:
            self._kick = None

    def seal(self, reason: str, host_key: Ed25519PrivateKey) -> None:
        """Write the seal, flush, enter it in the ledger, and forget the session key."""
        if self._fd is None:
            return
        try:
            seq = self.seq + 1
            head = self.write("seal", {"records": seq, "reason": reason})
            self.sync()
            ledger.append(self.directory, host_key, "seal", {"session": self.session_id, "records": seq, "head": head})
            with contextlib.suppress(OSError):
                ledger.open_marker(self.directory, self.session_id).unlink()
        finally:
            self._abandon()

    def _abandon(self) -> None:
        self._sign = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _signer(key: SigningKey) -> Signer:
    def sign(data: bytes) -> bytes:
        return key.sign(data).signature

    return sign


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
