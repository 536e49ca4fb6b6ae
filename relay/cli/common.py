"""Helpers the commands share: running async code, mapping RelayError to an exit code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import typer

from relay import console
from relay.errors import RelayError

T = TypeVar("T")


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _unwrap(inner)
            if isinstance(found, RelayError):
                return found
    return exc


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run `fn` on anyio; a RelayError becomes its one-line diagnosis and exit code."""
    try:
        return anyio.run(fn)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except BaseException as exc:
        inner = _unwrap(exc)
        if isinstance(inner, RelayError):
            console.error(str(inner))
            raise typer.Exit(inner.exit_code) from None
        if inner is not exc:
            raise inner from None
        raise


def fail(err: RelayError) -> typer.Exit:
    console.error(str(err))
    return typer.Exit(err.exit_code)
