"""The token key lives in the OS keyring.

No OS keyring service runs on this machine, so these tests install an in-memory keyring backend: a stand-in
for the Secret Service / Keychain, used only because the real one cannot run here.
"""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.errors import NoKeyringError

from relay.errors import GuardError
from relay.masking.keys import ACCOUNT, SERVICE, token_key
from tests.support.keyrings import MemoryKeyring


class NoKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise NoKeyringError("no backend")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_the_key_is_created_once_and_kept_in_the_keyring(memory_keyring: MemoryKeyring) -> None:
    first = token_key()
    assert len(first) == 32
    assert token_key() == first
    assert (SERVICE, ACCOUNT) in memory_keyring.store


def test_without_a_keyring_token_mode_refuses_to_start() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        with pytest.raises(GuardError, match="keyring"):
            token_key()
    finally:
        keyring.set_keyring(previous)
