"""The device flow on a terminal, presented as `gh auth login` does: the code large, the URL, a QR code of the
complete URL, the browser opened when there is a desktop to open it on, and a live countdown. All on stderr."""

from __future__ import annotations

import io
import os
import sys
import time

import anyio
from anyio.abc import TaskGroup
from rich.live import Live
from rich.text import Text

from relay.auth.device import DeviceCode
from relay.console import console


class TerminalPrompt:
    """Use as `async with TerminalPrompt() as prompt:` (the countdown runs in its task group)."""

    def __init__(self, *, open_browser: bool | None = None, qr: bool = True) -> None:
        self._open = _can_open_browser() if open_browser is None else open_browser
        self._qr = qr
        self._done = anyio.Event()
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> TerminalPrompt:
        self._tg = await anyio.create_task_group().__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        assert self._tg is not None
        await self._tg.__aexit__(None, None, None)

    async def show(self, code: DeviceCode) -> None:
        out = console()
        out.print()
        out.print(Text("To sign in, open this page and enter the code:", style="bold"))
        out.print(f"  {code.verification_uri}", markup=False, highlight=False, soft_wrap=True)
        out.print()
        out.print(Text(f"   {code.user_code}   ", style="bold reverse"))
        out.print()
        if self._qr:
            out.print("or scan this with a phone (it opens the page with the code filled in):", markup=False)
            out.file.write(_qr(code.url))
            out.file.flush()
        if self._open:
            import webbrowser

            if await anyio.to_thread.run_sync(webbrowser.open, code.url):
                out.print("A browser window was opened for you.", markup=False)
        if out.is_terminal and self._tg is not None:
            self._tg.start_soon(self._countdown, code)

    async def _countdown(self, code: DeviceCode) -> None:
        with Live(console=console(), transient=True, refresh_per_second=2) as live:
            while not self._done.is_set():
                left = max(0, int(code.expires_at - time.monotonic()))
                live.update(Text(f"Waiting for you to sign in... {left // 60}:{left % 60:02d} left (Ctrl-C to stop)",
                                 style="dim"))
                with anyio.move_on_after(1):
                    await self._done.wait()

    async def finished(self, ok: bool) -> None:
        self._done.set()


def _qr(url: str) -> str:
    import segno

    buf = io.StringIO()
    segno.make(url, error="m").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def _can_open_browser() -> bool:
    if os.environ.get("RELAY_NO_BROWSER") or not sys.stderr.isatty():
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    # Without a desktop, webbrowser would start a text browser in this very terminal.
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
