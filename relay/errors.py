"""relay's error tree: every error knows its exit code and a one-line diagnosis."""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error relay reports to a person. `str(err)` is the one-line diagnosis."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(RelayError):
    """The command line asks for something impossible."""

    exit_code = 2


class ConfigError(RelayError):
    """The configuration file is invalid; the message names file, line and key."""

    exit_code = 2


class UpstreamError(RelayError):
    """The MCP server cannot be reached, refused us, or died: the session cannot go on."""

    exit_code = 4


class GuardError(RelayError):
    """A guard (recorder, masking, approval) cannot do its job; relay fails closed."""

    exit_code = 5


class CallFailed(RelayError):
    """`relay call`: the tool call returned an error or `isError`."""

    exit_code = 1


class AuthError(RelayError):
    """Identity: no valid login, the provider refused or cannot be reached, a grant was refused."""

    exit_code = 6


class GrantLost(UpstreamError):
    """Mid-session, relay can no longer get a grant for the server (the login expired or was revoked)."""

    exit_code = 6
