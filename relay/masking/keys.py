"""The key of `token` masking mode: a random 256-bit HMAC key in the OS keyring, never in config or files."""

from __future__ import annotations

import base64
import secrets

from relay.errors import GuardError

SERVICE = "mcp-pci-relay"
ACCOUNT = "masking-token-key"


def token_key() -> bytes:
    """The host's token key, created on first use. Tokens stay stable across sessions on this host."""
    import keyring
    from keyring.errors import KeyringError

    try:
        stored = keyring.get_password(SERVICE, ACCOUNT)
        if stored is None:
            stored = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
            keyring.set_password(SERVICE, ACCOUNT, stored)
        return base64.b64decode(stored)
    except KeyringError as exc:
        raise GuardError(
            "masking mode 'token' keeps its key in the OS keyring, and no keyring is available here "
            f"({type(exc).__name__})", hint="use masking.pan: last4 or bin_last4, or set up a keyring backend") from None
