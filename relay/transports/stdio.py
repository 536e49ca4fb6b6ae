"""stdio on both sides: relay's own stdin/stdout towards the MCP client, and a child server process.

This is the only module that writes to stdout: stdout belongs to the protocol.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
from anyio.abc import ByteReceiveStream, Process

from relay.errors import UpstreamError
from relay.jsonrpc import Direction, Message
from relay.transports import Fault
from relay.transports.framing import CHUNK, LineReader

log = logging.getLogger("relay.stdio")


class _FdReceiveStream(ByteReceiveStream):
    """Reads a pipe or terminal file descriptor through the event loop (no thread hop per read)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        mode = os.fstat(fd).st_mode
        # epoll cannot watch regular files (`relay run < file`): read those in a worker thread instead.
        self._threaded = stat.S_ISREG(mode)
        self._was_blocking = os.get_blocking(fd)
        if not self._threaded:
            os.set_blocking(fd, False)

    async def receive(self, max_bytes: int = CHUNK) -> bytes:
        while True:
            if self._threaded:
                data = await anyio.to_thread.run_sync(os.read, self._fd, max_bytes)
            else:
                try:
                    data = os.read(self._fd, max_bytes)
                except BlockingIOError:
                    await anyio.wait_readable(self._fd)
                    continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        if not self._threaded:
            os.set_blocking(self._fd, self._was_blocking)


class _FdWriter:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._was_blocking = os.get_blocking(fd)
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if not self._regular:
            os.set_blocking(fd, False)
        self._lock = anyio.Lock()

    async def write(self, data: bytes) -> None:
        async with self._lock:  # one message's bytes never interleave with another's
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._fd, view)
                except BlockingIOError:
                    await anyio.wait_writable(self._fd)
                    continue
                view = view[n:]

    def restore(self) -> None:
        if not self._regular:
            os.set_blocking(self._fd, self._was_blocking)


class StdioClientTransport:
    """The MCP client on relay's own stdin/stdout."""

    def __init__(self, limit: int, stdin_fd: int | None = None, stdout_fd: int | None = None) -> None:
        self._in = _FdReceiveStream(sys.stdin.fileno() if stdin_fd is None else stdin_fd)
        self._out = _FdWriter(sys.stdout.fileno() if stdout_fd is None else stdout_fd)
        self._reader = LineReader(self._in, limit, Direction.CLIENT_TO_SERVER)

    async def send(self, msg: Message) -> None:
        try:
            await self._out.write(msg.line())
        except (BrokenPipeError, ConnectionResetError):
            raise anyio.BrokenResourceError from None

    async def receive(self) -> Message | Fault:
        return await self._reader.receive()

    async def aclose(self) -> None:
        await self._in.aclose()
        self._out.restore()


class ChildProcessTransport:
    """An MCP server run as a child process, speaking newline-delimited JSON-RPC on its stdio."""

    def __init__(self, process: Process, label: str, limit: int) -> None:
        self._process = process
        self._label = label
        assert process.stdout is not None and process.stdin is not None
        self._reader = LineReader(process.stdout, limit, Direction.SERVER_TO_CLIENT)
        self._lock = anyio.Lock()

    async def send(self, msg: Message) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            async with self._lock:
                await stdin.send(msg.line())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise UpstreamError(await self._death_note()) from None

    async def receive(self) -> Message | Fault:
        try:
            return await self._reader.receive()
        except anyio.EndOfStream:
            raise UpstreamError(await self._death_note()) from None

    async def _death_note(self) -> str:
        with anyio.move_on_after(2):
            await self._process.wait()
        code = self._process.returncode
        if code is None:
            return f"server '{self._label}' closed its stdout"
        if code < 0:
            return f"server '{self._label}' was killed by signal {-code}"
        return f"server '{self._label}' exited with code {code}"

    async def aclose(self) -> None:
        """Close stdin (the MCP way to ask a stdio server to stop), then terminate, then kill; always reap."""
        process = self._process
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                with contextlib.suppress(Exception):
                    await process.stdin.aclose()
            if process.returncode is None:
                with anyio.move_on_after(2):
                    await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                with anyio.move_on_after(2):
                    await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def _pump_stderr(stream: ByteReceiveStream, label: str, done: anyio.Event) -> None:
    """Pass the server's stderr to relay's stderr, each line prefixed with the server's name."""
    prefix = f"[{label}] ".encode()
    err = sys.stderr.buffer
    pending = b""
    try:
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            while True:
                pending += await stream.receive(CHUNK)
                *lines, pending = pending.split(b"\n")
                if lines:
                    err.write(b"".join(prefix + line + b"\n" for line in lines))
                    err.flush()
        if pending:
            err.write(prefix + pending + b"\n")
            err.flush()
    finally:
        done.set()


@contextlib.asynccontextmanager
async def open_child(
    command: Sequence[str],
    *,
    label: str,
    limit: int,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> AsyncIterator[ChildProcessTransport]:
    full_env = {**os.environ, **(env or {})}
    try:
        process = await anyio.open_process(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=full_env, cwd=cwd,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise UpstreamError(f"cannot start server '{label}': {exc.strerror}: {command[0]}") from exc
    transport = ChildProcessTransport(process, label, limit)
    stderr_done = anyio.Event()
    async with anyio.create_task_group() as tg:
        assert process.stderr is not None
        tg.start_soon(_pump_stderr, process.stderr, label, stderr_done)
        try:
            yield transport
        finally:
            await transport.aclose()
            # The server's last words (often the reason it died) are worth a moment's wait.
            with anyio.move_on_after(1, shield=True):
                await stderr_done.wait()
            tg.cancel_scope.cancel()


def write_stdout(data: bytes) -> None:
    """Command output on stdout for commands that are not a protocol session (`relay call`)."""
    out = sys.stdout.buffer
    out.write(data)
    out.flush()
