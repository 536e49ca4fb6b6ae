"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # relay runs on asyncio (uvicorn, httpx); `@pytest.mark.anyio` tests run there only.
    return "asyncio"
