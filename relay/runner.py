"""Wiring for the commands: resolve the server, build the chain, open both sides, run the session."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from relay.config import (
    ApprovalConfig,
    CollectorConfig,
    Config,
    IdentityConfig,
    MaskingConfig,
    ServerConfig,
    TranscriptConfig,
)
from relay.errors import UpstreamError, UsageError
from relay.guards import ChainOptions, build_chain
from relay.jsonrpc import Direction
from relay.pipeline import Pipeline
from relay.session import Session
from relay.transcript.writer import new_session_id
from relay.transports import Transport
from relay.transports.http import Credentials
from relay.transports.memory import MemoryTransport, memory_pair
from relay.transports.stdio import StdioClientTransport
from relay.transports.upstream import open_upstream

if TYPE_CHECKING:
    from relay.auth.login import Login, NotLoggedIn
    from relay.transports.listen import ListenOptions

log = logging.getLogger("relay.runner")


@dataclass(frozen=True)
class Target:
    server: ServerConfig
    transcript_dir: Path | None
    max_message_bytes: int
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    transcripts: TranscriptConfig = field(default_factory=TranscriptConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    identity: IdentityConfig | None = None  # the server's identity, when it has one
    approvals: ApprovalConfig = field(default_factory=ApprovalConfig)
    approval_identity: IdentityConfig | None = None  # who relay is at the approval service (approvals.remote)


def resolve_server(config: Config, name: str | None, url: str | None, command: list[str],
                   transport: str | None, headers: dict[str, str]) -> ServerConfig:
    """The server named in the config, or an ad hoc one from --url / -- COMMAND."""
    given = sum(bool(x) for x in (name, url, command))
    if given == 0:
        raise UsageError("name a server from the config, or give --url URL, or -- COMMAND ARGS...")
    if given > 1:
        raise UsageError("give only one of: a server name, --url, or -- COMMAND")
    if name:
        server = config.server(name)
        if transport or headers:
            server = ServerConfig(
                name=server.name, url=server.url, command=server.command, env=server.env, cwd=server.cwd,
                transport=transport or server.transport, headers={**server.headers, **headers},
            )
        return server
    if url:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url needs an http:// or https:// URL, got '{url}'")
        if transport == "stdio":
            raise UsageError("--transport stdio needs a command, not --url")
        return ServerConfig(name=_label(url), url=url, transport=transport or "auto", headers=headers)
    if transport not in (None, "stdio"):
        raise UsageError(f"--transport {transport} needs --url, not a command")
    return ServerConfig(name=Path(command[0]).name, command=tuple(command), transport="stdio")


def _label(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url


def _chain(target: Target, client: Transport, identity: dict[str, Any] | None = None,
           login: Login | None = None) -> Pipeline:
    return build_chain(ChainOptions(
        session_id=new_session_id(), server=target.server, transcript_dir=target.transcript_dir,
        masking=target.masking, transcripts=target.transcripts, collector=target.collector, identity=identity,
        approvals=target.approvals, approval_identity=target.approval_identity, approval_login=login,
        protocol_on_terminal=isinstance(client, StdioClientTransport) and (os.isatty(0) or os.isatty(1))))


async def _run_session(target: Target, client: Transport, *, in_band_login: bool = False) -> None:
    """`in_band_login`: with no valid login, sign the person in through the MCP client (no terminal here)."""
    if target.identity is None:
        await _relay(target, client, None, None)
        return
    from relay.auth.login import NotLoggedIn
    from relay.auth.upstream import identity_record, server_grant

    assert target.server.url is not None
    started = False
    for attempt in range(2):
        try:
            async with server_grant(target.identity, target.server.url, target.server.grant) as grant:
                started = True
                await _relay(target, client, grant, await identity_record(grant))
            return
        except NotLoggedIn as exc:
            # Only before the session: mid-session the client has initialized with a server it cannot get back.
            if started or not in_band_login or attempt or target.identity.flow != "device":
                raise
            error = exc
        signed_in = await _login_in_band(target.identity, client, target.server.name, target.server.url, error)
        if signed_in is None:
            return
        client = signed_in


async def _login_in_band(identity: IdentityConfig, client: Transport, server: str, url: str,
                         error: NotLoggedIn) -> Transport | None:
    from relay.auth import oauth
    from relay.auth.inband import login_in_band
    from relay.auth.login import Login
    from relay.auth.upstream import with_issuer

    async with oauth.client() as http:
        return await login_in_band(client, Login(await with_issuer(http, identity, [url]), http), server, error)


async def _relay(target: Target, client: Transport, credentials: Credentials | None,
                 identity: dict[str, Any] | None) -> None:
    login = None
    if credentials is not None:
        from relay.auth.grants import Grant

        assert isinstance(credentials, Grant)
        # The approval service with the session's own identity shares its login: a rotated refresh token has one user.
        remote_identity = target.approval_identity
        if remote_identity is not None and credentials.login.config.name == remote_identity.name:
            login = credentials.login
    pipeline = _chain(target, client, identity, login)
    if credentials is not None:
        assert isinstance(credentials, Grant)
        if credentials.last is not None:
            pipeline.report(credentials.last)  # the grant obtained at start, now that there is a transcript
        credentials.on_grant = pipeline.report
    reason = "error"
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipeline.serve)
            try:
                async with open_upstream(target.server, limit=target.max_message_bytes,
                                         credentials=credentials) as upstream:
                    await Session(client, upstream, pipeline).run()
                reason = "client_closed"
            except BaseException as exc:
                reason = _close_reason(exc)
                raise
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await pipeline.aclose(reason)


def _close_reason(exc: BaseException) -> str:
    """What the transcript's seal says about an exception that ended the session (task groups wrap them)."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "signal"
    if isinstance(exc, UpstreamError):
        return "upstream_failed"
    if isinstance(exc, BaseExceptionGroup):
        reasons = {_close_reason(inner) for inner in exc.exceptions}
        for reason in ("upstream_failed", "signal"):
            if reason in reasons:
                return reason
    return "error"


async def _until_signal(scope: anyio.CancelScope) -> None:
    """SIGTERM and SIGHUP end the session cleanly: guards closed, the transcript sealed (reason "signal")."""
    import signal

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("relay: %s received; ending the session", signal.Signals(signum).name)
            scope.cancel()
            return


async def run_stdio(target: Target) -> None:
    """`relay run`: the MCP client on our stdin/stdout."""
    import sys

    if sys.stdin.isatty():
        from relay.console import console

        console().print(
            f"relay: relaying MCP for {target.server.describe()} on this terminal's stdin/stdout. "
            "Assistants start `relay run` themselves; see the README to register it. Ctrl-D ends the session.",
            markup=False, highlight=False)
    client = StdioClientTransport(target.max_message_bytes)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_signal, tg.cancel_scope)
            # Spawned by an assistant (no terminal): a missing login is signed in through the MCP client.
            await _run_session(target, client, in_band_login=not sys.stdin.isatty())
            tg.cancel_scope.cancel()
    finally:
        await client.aclose()


ClientScript = Callable[[MemoryTransport], Awaitable[None]]


async def run_scripted(target: Target, script: ClientScript) -> None:
    """Drive a session from inside relay (`relay call`, `relay demo`): `script` plays the MCP client."""
    relay_end, client_end = memory_pair(Direction.CLIENT_TO_SERVER)
    async with anyio.create_task_group() as tg:
        async def play() -> None:
            try:
                await script(client_end)
            finally:
                await client_end.aclose()  # the client is done: the session ends as on stdin EOF
        tg.start_soon(play)
        await _run_session(target, relay_end)


async def serve_listen(target: Target, options: ListenOptions) -> None:
    """`relay run --listen`: serve local clients over Streamable HTTP (and legacy SSE), one relay session each."""
    import uvicorn

    from relay.console import console
    from relay.transports.listen import ListenApp

    async with anyio.create_task_group() as tg:
        app = ListenApp(options, target.max_message_bytes, lambda s: _run_session(target, s, in_band_login=True), tg)
        config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False,
                                lifespan="off", ws="none", http="h11", server_header=False)
        server = uvicorn.Server(config)

        async def announce() -> None:
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await anyio.sleep(0.01)
            host = f"[{options.host}]" if ":" in options.host else options.host
            console().print(f"relay: listening on http://{host}:{options.port}/mcp (legacy SSE at /sse) "
                            f"for {target.server.describe()}", markup=False, highlight=False)

        tg.start_soon(announce)
        await server.serve()
        if not server.started:
            raise UsageError(f"cannot listen on {options.host}:{options.port} (in use, or not allowed)")
        tg.cancel_scope.cancel()
