"""A real pseudo-terminal for tests of what relay shows people: a pty pair, everything written to it collected
by a background reader, and its text (ANSI escapes stripped) waited on."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import termios
import threading
import time
from collections.abc import Callable

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|[=>78])")


class PseudoTerminal:
    def __init__(self, rows: int = 40, cols: int = 120) -> None:
        # The test keeps the slave open as well: with no process holding it, reads on the master fail (EIO).
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.name = os.ttyname(self.slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every end of the slave is closed
                return
            if not data:
                return
            self.output += data

    def text(self, since: int = 0) -> str:
        """What the terminal shows, without escapes; from position `since` of an earlier `text()`."""
        return ANSI.sub("", bytes(self.output).decode("utf-8", "replace"))[since:]

    def wait_for(self, needle: str, timeout: float = 30, since: int = 0,
                 alive: Callable[[], str | None] | None = None) -> str:
        """Until `needle` shows after `since`; the text from there. `alive` says why to stop waiting (a process
        that exited), or None."""
        deadline = time.monotonic() + timeout
        while needle not in (shown := self.text(since)):
            gone = alive() if alive is not None else None
            assert gone is None, f"{gone}:\n{shown[-3000:]}"
            assert time.monotonic() < deadline, f"{needle!r} never appeared on the terminal:\n{shown[-3000:]}"
            time.sleep(0.02)
        return shown

    def write(self, data: str) -> None:
        os.write(self.master, data.encode())

    def modes(self) -> int:
        """The terminal's local modes (echo, line mode) as the program left them."""
        return termios.tcgetattr(self.slave)[3]

    def close(self) -> None:
        os.close(self.slave)
        self._reader.join(5)
        os.close(self.master)
