"""relay.transcript.hostkey: the host key in a 0600 file the user opts into, or in the OS keyring.

No OS keyring service runs on this test machine: the keyring tests install an in-memory keyring backend
(a stand-in, said here as the house rules ask), which exercises relay's code path through the `keyring` API.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.errors import NoKeyringError

from relay.errors import GuardError, UsageError
from relay.transcript.format import public_bytes
from relay.transcript.hostkey import ACCOUNT, SERVICE, HostKeys, fingerprint, load_public_pem, public_pem
from tests.support.keyrings import MemoryKeyring


class NoKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise NoKeyringError("no backend")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_file_store_creates_a_0600_key_once(state: Path) -> None:
    keys = HostKeys("file")
    first = keys.load()
    assert public_bytes(keys.load().public_key()) == public_bytes(first.public_key())
    assert keys.path == state / "relay" / "keys" / "host-ed25519.pem"
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.path.parent.stat().st_mode) == 0o700


def test_keyring_store_keeps_the_key_in_the_keyring_only(state: Path, memory_keyring: MemoryKeyring) -> None:
    key = HostKeys("keyring").load()
    assert (SERVICE, ACCOUNT) in memory_keyring.store
    assert public_bytes(HostKeys("keyring").load().public_key()) == public_bytes(key.public_key())
    assert not (state / "relay" / "keys").exists()  # nothing on disk


def test_no_keyring_is_a_clear_error_naming_the_opt_in(memory_keyring: MemoryKeyring) -> None:
    keyring.set_keyring(NoKeyring())
    with pytest.raises(GuardError) as err:
        HostKeys("keyring").load()
    assert "transcripts.key_store: file" in str(err.value) and "RELAY_KEY_STORE=file" in str(err.value)


def test_rotation_keeps_the_old_public_key_trusted() -> None:
    keys = HostKeys("file")
    old, new = keys.rotate()
    trusted = [public_bytes(k) for k in keys.trusted()]
    assert trusted == [public_bytes(new.public_key()), public_bytes(old.public_key())]
    assert public_bytes(keys.load().public_key()) == public_bytes(new.public_key())


def test_export_round_trips_and_bad_pem_is_a_usage_error(tmp_path: Path) -> None:
    key = HostKeys("file").load().public_key()
    again = load_public_pem(public_pem(key).encode(), "k.pem")
    assert public_bytes(again) == public_bytes(key)
    assert fingerprint(public_bytes(key)).startswith("SHA256:")
    with pytest.raises(UsageError, match="not a PEM public key"):
        load_public_pem(b"hello", "k.pem")


def test_verify_without_a_host_key_says_so() -> None:
    with pytest.raises(UsageError, match="no host key"):
        HostKeys("file").trusted()
