"""Where a login lives between runs: the refresh token and the identity it belongs to.

The OS keyring by default; a 0600 file (created 0600 from its first byte) only when the identity opts into
`store: file`. A machine without a keyring gets a plain error that names that opt-in; relay never falls back
to a file by itself. Access tokens and grants are never stored: they live in memory only.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay import paths
from relay.errors import AuthError

SERVICE = "mcp-pci-relay"


@dataclass(frozen=True)
class StoredLogin:
    refresh_token: str | None
    identity: dict[str, Any]  # Identity.record() plus expires_at
    saved_at: float


class LoginStore:
    def __init__(self, identity: str, store: str = "keyring") -> None:
        self.identity = identity
        self.store = store

    @property
    def path(self) -> Path:
        return paths.state_home() / "identities" / f"{self.identity}.json"

    def describe(self) -> str:
        return "the OS keyring" if self.store == "keyring" else str(self.path)

    def load(self) -> StoredLogin | None:
        raw = self._read()
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return StoredLogin(refresh_token=data.get("refresh_token"), identity=dict(data["identity"]),
                               saved_at=float(data.get("saved_at", 0)))
        except (ValueError, KeyError, TypeError):
            raise AuthError(f"the stored login for '{self.identity}' in {self.describe()} is unreadable",
                            hint=f"run `relay login {self.identity}` again") from None

    def save(self, login: StoredLogin) -> None:
        self._write(json.dumps({"refresh_token": login.refresh_token, "identity": login.identity,
                                "saved_at": login.saved_at}))

    def delete(self) -> None:
        if self.store == "file":
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            keyring.delete_password(SERVICE, self._account)
        except PasswordDeleteError:
            pass
        except KeyringError as exc:
            raise _no_keyring(self.identity, exc) from None

    @property
    def _account(self) -> str:
        return f"identity:{self.identity}"

    def _read(self) -> str | None:
        if self.store == "file":
            try:
                return self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise AuthError(f"cannot read the stored login {self.path}: {exc.strerror or exc}") from None
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(SERVICE, self._account)
        except KeyringError as exc:
            raise _no_keyring(self.identity, exc) from None

    def _write(self, text: str) -> None:
        if self.store == "file":
            directory = paths.private_dir(self.path.parent)
            tmp = directory / f".{self.identity}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)  # 0600 from byte one
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                raise AuthError(f"cannot write the stored login {self.path}: {exc.strerror or exc}") from None
            return
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(SERVICE, self._account, text)
        except KeyringError as exc:
            raise _no_keyring(self.identity, exc) from None


def _no_keyring(identity: str, exc: Exception) -> AuthError:
    return AuthError(
        f"relay keeps logins in the OS keyring, and no keyring is available here ({type(exc).__name__})",
        hint=f"to keep identity '{identity}' in a 0600 file instead, set `store: file` on it in the config")


def client_secret(identity: str) -> str | None:
    """A bot's client secret from the OS keyring (`client_secret_store: keyring`), or None if not set."""
    import keyring
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(SERVICE, f"client-secret:{identity}")
    except KeyringError as exc:
        raise _no_keyring(identity, exc) from None


def set_client_secret(identity: str, secret: str) -> None:
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(SERVICE, f"client-secret:{identity}", secret)
    except KeyringError as exc:
        raise _no_keyring(identity, exc) from None
