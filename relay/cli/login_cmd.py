"""`relay login|whoami|logout`: a person's OIDC login, kept for relay to get short-lived grants with."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from relay import config as config_mod
from relay.cli import state
from relay.cli.common import fail, run_async
from relay.console import console
from relay.errors import RelayError

IdentityArg = Annotated[str | None, typer.Argument(metavar="[IDENTITY]",
                                                   help="An identity from the config (default: the only one).")]


def login(identity: IdentityArg = None) -> None:
    """Sign in with the device flow: a code and a URL (and a QR code) here, the sign-in in your browser.
    For a bot whose client secret lives in the keyring: store the secret (read without echo, or from stdin)."""
    from relay.auth import oauth
    from relay.auth.login import Login
    from relay.auth.terminal import TerminalPrompt
    from relay.auth.upstream import with_issuer

    try:
        config = config_mod.load(state.config_path)
        cfg = config.identity(identity)
        if cfg.client_secret_store == "keyring":
            _store_client_secret(cfg.name)
            return
    except RelayError as err:
        raise fail(err) from None
    # Servers that take this identity's access tokens by resource indicator: the login must name them (RFC 8707).
    resources = sorted({s.grant.resource or s.url for s in config.servers.values()
                        if s.identity == cfg.name and s.grant is not None and s.grant.mode == "resource" and s.url})

    users = [s.url for s in config.servers.values() if s.identity == cfg.name and s.url]

    async def go() -> None:
        async with oauth.client() as http, TerminalPrompt() as prompt:
            ident = await with_issuer(http, cfg, users)
            who = await Login(ident, http).login(prompt, resources=[r for r in resources if r])
        name = who.name or who.email or who.subject
        console().print(f"Logged in to {ident.issuer} as {name} (identity '{cfg.name}').", markup=False,
                        highlight=False, soft_wrap=True)

    run_async(go)


def _store_client_secret(name: str) -> None:
    import getpass
    import sys

    from relay.auth.store import set_client_secret
    from relay.errors import UsageError

    secret = getpass.getpass(f"client secret for '{name}': ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not secret:
        raise UsageError("no client secret given")
    set_client_secret(name, secret)
    console().print(f"stored the client secret of '{name}' in the OS keyring", markup=False, highlight=False)


def whoami(identity: IdentityArg = None) -> None:
    """Who you are logged in as: issuer, subject, name, groups, when the login expires. Never a token."""
    from relay.auth.store import LoginStore

    try:
        cfg = config_mod.load(state.config_path).identity(identity)
        stored = LoginStore(cfg.name, cfg.store).load()
    except RelayError as err:
        raise fail(err) from None
    out = console()
    if stored is None:
        out.print(f"not logged in as '{cfg.name}' (run `relay login {cfg.name}`)", markup=False, highlight=False)
        raise typer.Exit(6)
    who = stored.identity
    lines = [f"identity: {cfg.name} ({cfg.flow})", f"issuer:   {who.get('issuer')}", f"subject:  {who.get('subject')}"]
    if who.get("name"):
        lines.append(f"name:     {who['name']}")
    if who.get("email"):
        lines.append(f"email:    {who['email']}")
    lines.append(f"groups:   {', '.join(who.get('groups') or []) or '-'}")
    saved = datetime.datetime.fromtimestamp(stored.saved_at, datetime.UTC)
    lines.append(f"since:    {saved:%Y-%m-%d %H:%M} UTC")
    ends = who.get("login_expires_at")
    if not stored.refresh_token:
        lines.append("expires:  with the current session (the provider gave no refresh token)")
    elif isinstance(ends, (int, float)):
        lines.append(f"expires:  {datetime.datetime.fromtimestamp(ends, datetime.UTC):%Y-%m-%d %H:%M} UTC")
    else:
        lines.append("expires:  when the provider ends it (it did not say when); renewed until then")
    lines.append(f"kept in:  {LoginStore(cfg.name, cfg.store).describe()}")
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def logout(identity: IdentityArg = None) -> None:
    """Revoke the login at the provider (when it supports revocation) and forget it here."""
    from relay.auth import oauth
    from relay.auth.login import Login
    from relay.auth.upstream import with_issuer

    try:
        config = config_mod.load(state.config_path)
        cfg = config.identity(identity)
    except RelayError as err:
        raise fail(err) from None

    users = [s.url for s in config.servers.values() if s.identity == cfg.name and s.url]

    async def go() -> bool:
        async with oauth.client() as http:
            return await Login(await with_issuer(http, cfg, users), http).logout()

    revoked = run_async(go)
    console().print(f"logged out of '{cfg.name}'" + (" (revoked at the provider)" if revoked else ""),
                    markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("whoami")(whoami)
    app.command("logout")(logout)
