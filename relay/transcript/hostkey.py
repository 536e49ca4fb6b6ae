"""The host key: the long-lived Ed25519 key that certifies each session's key and signs the ledger.

It lives in the OS keyring by default, or in a 0600 PEM file the user opts into (`transcripts.key_store: file`,
or RELAY_KEY_STORE=file for bots on machines without a keyring). Keys it replaced are kept as public keys only,
so old transcripts still verify.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from relay import paths
from relay.errors import GuardError, UsageError
from relay.transcript.format import b64, public_bytes

KeyStore = Literal["keyring", "file"]
KEY_STORES: tuple[KeyStore, ...] = ("keyring", "file")
SERVICE = "mcp-pci-relay"
ACCOUNT = "transcript-host-key"


def keys_dir() -> Path:
    return paths.state_home() / "keys"


def default_key_file() -> Path:
    return keys_dir() / "host-ed25519.pem"


def fingerprint(public: bytes) -> str:
    import hashlib

    return "SHA256:" + b64(hashlib.sha256(public).digest())


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_pem(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise UsageError(f"{source} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{source} is not an Ed25519 public key")
    return key


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _load_private(data: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise GuardError(f"the host key in {source} is unreadable") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise GuardError(f"the host key in {source} is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class HostKeys:
    """Where the host key is kept. `load()` creates it on first use."""

    store: KeyStore = "keyring"
    file: Path | None = None  # for store "file"; default under $XDG_STATE_HOME/relay/keys/

    @property
    def path(self) -> Path:
        return self.file or default_key_file()

    def describe(self) -> str:
        return "the OS keyring" if self.store == "keyring" else str(self.path)

    def load(self, *, create: bool = True) -> Ed25519PrivateKey:
        pem = self._read()
        if pem is not None:
            return _load_private(pem, self.describe())
        if not create:
            raise UsageError(f"no host key in {self.describe()} yet (relay creates it at the first recorded session)")
        self._write(_private_pem(Ed25519PrivateKey.generate()), exclusive=True)
        pem = self._read()  # another relay may have created it first: use the one that is stored
        if pem is None:
            raise GuardError(f"the host key just written to {self.describe()} cannot be read back")
        return _load_private(pem, self.describe())

    def rotate(self) -> tuple[Ed25519PrivateKey, Ed25519PrivateKey]:
        """Replace the host key; returns (old, new). The old public key is kept for verifying old sessions."""
        old = self.load()
        new = Ed25519PrivateKey.generate()
        retired = paths.private_dir(keys_dir() / "retired")
        pub = public_bytes(old.public_key())
        (retired / f"{b64(pub)}.pem").write_text(public_pem(old.public_key()))
        self._write(_private_pem(new), exclusive=False)
        return old, new

    def trusted(self) -> list[Ed25519PublicKey]:
        """The local trust anchors: the current host key and the keys it replaced (public halves)."""
        keys = [self.load(create=False).public_key()]
        retired = keys_dir() / "retired"
        if retired.is_dir():
            keys += [load_public_pem(p.read_bytes(), str(p)) for p in sorted(retired.glob("*.pem"))]
        return keys

    def _read(self) -> bytes | None:
        if self.store == "file":
            try:
                return self.path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise GuardError(f"cannot read the host key {self.path}: {exc.strerror or exc}") from None
        import keyring
        from keyring.errors import KeyringError

        try:
            stored = keyring.get_password(SERVICE, ACCOUNT)
        except KeyringError as exc:
            raise _no_keyring(exc) from None
        return stored.encode("ascii") if stored is not None else None

    def _write(self, pem: bytes, *, exclusive: bool) -> None:
        if self.store == "file":
            paths.private_dir(self.path.parent)
            tmp = self.path.with_suffix(".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
                    f.flush()
                    os.fsync(f.fileno())
                if exclusive:
                    os.link(tmp, self.path)  # fails if another relay created the key meanwhile
                    tmp.unlink()
                else:
                    os.replace(tmp, self.path)
            except FileExistsError:
                tmp.unlink()
            except OSError as exc:
                raise GuardError(f"cannot write the host key {self.path}: {exc.strerror or exc}") from None
            return
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(SERVICE, ACCOUNT, pem.decode("ascii"))
        except KeyringError as exc:
            raise _no_keyring(exc) from None


def _no_keyring(exc: Exception) -> GuardError:
    return GuardError(
        f"transcripts are signed with a host key kept in the OS keyring, and no keyring is available here "
        f"({type(exc).__name__})",
        hint="on a machine without a keyring service set transcripts.key_store: file (a 0600 file) in the "
             "config, or RELAY_KEY_STORE=file in the environment")
