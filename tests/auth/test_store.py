"""relay.auth.store: a login kept in the OS keyring, or in a 0600 file only when the identity opts in.

No OS keyring service runs on this machine: the keyring tests install an in-memory backend (a stand-in, said
here as the house rules ask) to exercise relay's path through the `keyring` API; the "no keyring" test uses
keyring's own fail backend, which is what a headless machine really has.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring

from relay.auth.store import SERVICE, LoginStore, StoredLogin
from relay.errors import AuthError
from tests.support.keyrings import MemoryKeyring

LOGIN = StoredLogin(refresh_token="rt-secret-value", identity={"issuer": "https://idp", "subject": "alice"},
                    saved_at=1.0)


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def backend() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    mem = MemoryKeyring()
    keyring.set_keyring(mem)
    yield mem
    keyring.set_keyring(previous)


def test_file_store_is_0600_in_a_0700_directory(state: Path) -> None:
    store = LoginStore("corp", "file")
    store.save(LOGIN)
    assert store.path == state / "relay" / "identities" / "corp.json"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.load() == LOGIN
    store.delete()
    assert store.load() is None


def test_keyring_store_writes_nothing_to_disk(state: Path, backend: MemoryKeyring) -> None:
    store = LoginStore("corp")
    store.save(LOGIN)
    assert (SERVICE, "identity:corp") in backend.store
    assert store.load() == LOGIN
    assert not (state / "relay").exists()
    store.delete()
    assert store.load() is None


def test_no_keyring_says_so_and_names_the_opt_in(backend: MemoryKeyring) -> None:
    keyring.set_keyring(FailKeyring())
    with pytest.raises(AuthError) as err:
        LoginStore("corp").load()
    assert "no keyring is available" in str(err.value) and "store: file" in str(err.value)


def test_an_unreadable_login_is_a_clear_error(state: Path) -> None:
    store = LoginStore("corp", "file")
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(AuthError, match="relay login corp"):
        store.load()
