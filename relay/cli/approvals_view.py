"""The live view behind `relay approvals`: calls waiting for approval in every relay session of this user, the
selected one in detail, and keys to approve or deny it.

Polling (`poll`), drawing (`render`: state -> renderable) and keys (`handle_key`: state, key -> state, action) do
not know about each other, so the last two are tested without a terminal; `watch` wires them to one.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
import termios
import time
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from relay.console import shown

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

EMPTY = "No calls are waiting for approval. Leave this open; new ones appear here."
HELP = "↑/↓ or j/k select · a approve · d deny · r approve/deny with a reason · q quit"
POLL_EVERY = 0.75  # seconds between asking the sessions what is pending
TICK = 0.25  # redraw at least this often, so that the time left counts down
ESC_WAIT = 0.05  # how long an Esc waits for the rest of an arrow key's sequence
URGENT = 30  # seconds left under which the time shows red
DETAIL_LINES = 12  # lines of pretty-printed arguments in the detail pane, at most
REASON_MAX = 500
MARKER = "▸"  # the selected row

Mode = Literal["list", "choose", "reason"]  # browsing; `r` pressed, approve or deny?; typing the reason
Tone = Literal["ok", "error", "note"]


@dataclass(frozen=True)
class Entry:
    """One pending request as a session's socket listed it (`ApprovalRequest.public()`: masked arguments)."""

    path: Path  # the socket of the session that holds it, where the decision goes
    item: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.item.get("id"))


@dataclass(frozen=True)
class ViewState:
    entries: tuple[Entry, ...] = ()
    selected: str | None = None  # an id; follows the request, not the row, while the list changes
    mode: Mode = "list"
    target: Entry | None = None  # what `r` is about: fixed when it was pressed
    approve: bool = True  # in "reason" mode: the decision the reason goes with
    reason: str = ""
    status: str = ""
    tone: Tone = "note"
    done: tuple[str, ...] = ()  # the decisions sent, repeated on the terminal when the view closes

    def current(self) -> Entry | None:
        return next((e for e in self.entries if e.id == self.selected), None)


@dataclass(frozen=True)
class Decide:
    entry: Entry
    approve: bool
    reason: str | None


@dataclass(frozen=True)
class Quit:
    pass


Action = Decide | Quit | None


# -- keys ----------------------------------------------------------------------------------------------------

_SEQUENCES = {"[A": "up", "[B": "down", "OA": "up", "OB": "down", "[H": "home", "[F": "end", "OH": "home",
              "OF": "end", "[1~": "home", "[4~": "end", "[7~": "home", "[8~": "end"}


def parse_keys(text: str, *, final: bool = False) -> tuple[list[str], str]:
    """Key names from what the terminal sent: "up", "down", "home", "end", "enter", "esc", "backspace", or the
    character. Returns the keys and an unfinished escape sequence to complete with the next read; with `final`
    there is no next read, and a lone Esc is the Esc key."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            if i + 1 < len(text) and text[i + 1] in "[O":
                end = i + 2
                if text[i + 1] == "[":
                    while end < len(text) and not "@" <= text[end] <= "~":  # CSI: parameters, then a final byte
                        end += 1
                if end < len(text):
                    keys.append(_SEQUENCES.get(text[i + 1:end + 1], ""))
                    i = end + 1
                    continue
            if not final and (i + 1 == len(text) or text[i + 1] in "[O"):
                return [k for k in keys if k], text[i:]
            keys.append("esc")
        elif ch in "\r\n":
            keys.append("enter")
        elif ch in "\x7f\x08":
            keys.append("backspace")
        elif ch == "\x04":
            keys.append("eof")  # Ctrl-D
        elif ch.isprintable():
            keys.append(ch)
        i += 1
    return [k for k in keys if k], ""


def handle_key(state: ViewState, key: str) -> tuple[ViewState, Action]:
    """What a key does to the view, and the decision or quit it asks for."""
    if key == "eof":
        return state, Quit()
    if state.mode == "choose":
        if key in ("a", "d") and state.target is not None:
            return replace(state, mode="reason", approve=key == "a", reason=""), None
        return _cancelled(state), None
    if state.mode == "reason":
        if key == "esc":
            return _cancelled(state), None
        if key == "enter" and state.target is not None:
            action = Decide(state.target, state.approve, state.reason.strip() or None)
            return replace(state, mode="list", target=None, reason=""), action
        if key == "backspace":
            return replace(state, reason=state.reason[:-1]), None
        if len(key) == 1 and len(state.reason) < REASON_MAX:
            return replace(state, reason=state.reason + key), None
        return state, None
    if key in ("q", "Q"):
        return state, Quit()
    if key in ("up", "k", "down", "j", "home", "end"):
        return _move(state, key), None
    entry = state.current()
    if key in ("a", "d", "r") and entry is None:
        return replace(state, status="nothing is selected", tone="note"), None
    if key in ("a", "d") and entry is not None:
        return state, Decide(entry, key == "a", None)
    if key == "r" and entry is not None:
        return replace(state, mode="choose", target=entry), None
    return state, None


def _move(state: ViewState, key: str) -> ViewState:
    if not state.entries:
        return state
    ids = [e.id for e in state.entries]
    at = ids.index(state.selected) if state.selected in ids else 0
    if key in ("up", "k"):
        at = max(0, at - 1)
    elif key in ("down", "j"):
        at = min(len(ids) - 1, at + 1)
    else:
        at = 0 if key == "home" else len(ids) - 1
    return replace(state, selected=ids[at])


def _cancelled(state: ViewState) -> ViewState:
    return replace(state, mode="list", target=None, reason="", status="cancelled, nothing was sent", tone="note")


def with_pending(state: ViewState, entries: Sequence[Entry]) -> ViewState:
    """The state after a poll: requests decided elsewhere, expired or withdrawn are gone; the selection stays on
    its request, or on the row where it was when that request is gone."""
    ids = [e.id for e in entries]
    selected = state.selected
    if selected not in ids:
        old = [e.id for e in state.entries]
        at = old.index(selected) if selected in old else 0
        selected = ids[min(at, len(ids) - 1)] if ids else None
    new = replace(state, entries=tuple(entries), selected=selected)
    if state.target is not None and state.target.id not in ids:
        return replace(new, mode="list", target=None, reason="", tone="note",
                       status=f"{state.target.id} is no longer waiting (decided elsewhere, expired or withdrawn)")
    return new


def after_decision(state: ViewState, action: Decide, answer: Mapping[str, Any]) -> ViewState:
    """The state once the session answered a decision: the status line says what happened."""
    verb = "approved" if action.approve else "denied"
    if "error" in answer:
        return replace(state, status=f"not {verb}: {answer['error']}", tone="error")
    more = "" if answer.get("decided") else " (more approvers are needed)"
    why = f": {action.reason}" if action.reason else ""
    line = f"{verb} {action.entry.id}{more}{why}"
    return replace(state, status=line, tone="ok", done=(*state.done, line))


# -- drawing -------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    # Tool names, requesters and argument strings come from the agent and the server.
    return shown(text)


def _who(requester: Any) -> str:
    who = requester if isinstance(requester, Mapping) else {}
    return _clean(str(who.get("name") or who.get("email") or who.get("subject") or who.get("user") or "?"))


def _who_in_full(requester: Any) -> str:
    who = requester if isinstance(requester, Mapping) else {}
    parts = [f"{key} {who[key]}" for key in ("name", "email", "subject", "user", "issuer") if who.get(key)]
    return _clean(" · ".join(parts) or "?")


def time_left(seconds: float) -> str:
    if seconds <= 0:
        return "expired"
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole}s"


def _left(item: Mapping[str, Any], now: float) -> tuple[str, str]:
    try:
        seconds = float(item.get("expires_at") or 0) - now
    except (TypeError, ValueError):
        seconds = 0
    return time_left(seconds), "bold red" if seconds < URGENT else ""


def render(state: ViewState, now: float, height: int = 40, width: int = 100) -> RenderableType:
    """The whole screen for `state` at time `now` (epoch seconds), fitted to `height` lines of `width` cells."""
    from rich.console import Group
    from rich.text import Text

    count = len(state.entries)
    parts: list[RenderableType] = [Text.assemble(("relay approvals", "bold"),
                                                 f"  {count} waiting" if count else "")]
    entry = state.current()
    if entry is None:
        parts.append(Text(EMPTY))
    else:
        lines = max(3, min(DETAIL_LINES, height // 3))
        detail = _detail(entry, now, lines)
        # what is left once the title, table header and rule, the detail pane, prompt, status and help are drawn
        rows = max(1, height - (lines + 9) - 7)
        parts += [_table(state, now, rows, width), detail]
    if state.mode == "choose" and state.target is not None:
        parts.append(Text(f"{_clean(state.target.id)} with a reason: a approve · d deny · Esc cancel",
                          style="bold yellow"))
    elif state.mode == "reason" and state.target is not None:
        verb = "approving" if state.approve else "denying"
        parts.append(Text.assemble((f"reason for {verb} {_clean(state.target.id)}: ", "bold yellow"),
                                   _clean(state.reason), ("█", "dim"), ("   Enter sends · Esc cancels", "dim")))
    if state.status:
        style = {"ok": "bold green", "error": "bold red", "note": "yellow"}[state.tone]
        parts.append(Text(_clean(state.status), style=style))
    parts.append(Text(HELP, style="dim"))
    return Group(*parts)


_HEADERS = ("", "ID", "server / tool", "requester", "left", "rule", "arguments")
_CAPS = (1, 0, 36, 24, 0, 16, 0)  # widest a column gets from its content; 0: no cap
_SHRINKS = (False, False, True, True, False, True, True)  # the marker, ID and time left always show in full


def _table(state: ViewState, now: float, rows: int, width: int) -> RenderableType:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    ids = [e.id for e in state.entries]
    at = ids.index(state.selected) if state.selected in ids else 0
    # A window of rows that holds the selection, when not all of them fit.
    start = min(max(0, at - rows // 2), max(0, len(ids) - rows))
    window = state.entries[start:start + rows]
    cells: list[tuple[str, ...]] = []
    for entry in window:
        item = entry.item
        args = json.dumps(item.get("arguments"), ensure_ascii=False, default=str)
        cells.append((MARKER if entry.id == state.selected else "", _clean(entry.id),
                      _clean(f"{item.get('server')} / {item.get('tool')}"), _who(item.get("requester")),
                      _left(item, now)[0], _clean(str(item.get("rule") or "")), _clean(args[:400])))
    widths = _fit(cells, width)
    hidden = [f"{start} above" if start else "",
              f"{len(ids) - start - len(window)} below" if start + len(window) < len(ids) else ""]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  caption=" · ".join(h for h in hidden if h) or None, caption_justify="left")
    for header, column_width in zip(_HEADERS, widths, strict=True):
        table.add_column(header, width=column_width, no_wrap=True, overflow="ellipsis",
                         justify="right" if header == "left" else "left")
    for entry, row in zip(window, cells, strict=True):
        urgent = _left(entry.item, now)[1]
        # One line per request: long values are cut with an ellipsis, the detail pane shows them in full.
        texts = [Text(cell, style=urgent if header == "left" else "", no_wrap=True, overflow="ellipsis")
                 for header, cell in zip(_HEADERS, row, strict=True)]
        table.add_row(*texts, style="bold" if entry.id == state.selected else None)
    return table


def _fit(cells: list[tuple[str, ...]], width: int) -> list[int]:
    """Column widths that fill `width`: each column as wide as its content (up to its cap), then the widest of
    the columns that may shrink loses a cell at a time until the table fits; the arguments take what is left."""
    from rich.cells import cell_len

    wants = [max([cell_len(h)] + [cell_len(row[i]) for row in cells]) for i, h in enumerate(_HEADERS)]
    wants = [min(want, cap) if cap else want for want, cap in zip(wants, _CAPS, strict=True)]
    room = width - 3 * (len(_HEADERS) - 1)  # a separator and two cells of padding between columns
    while sum(wants) > room:
        shrinkable = [i for i, ok in enumerate(_SHRINKS) if ok and wants[i] > 1]
        if not shrinkable:
            break
        wants[max(shrinkable, key=lambda i: wants[i])] -= 1
    wants[-1] += max(0, room - sum(wants))
    return wants


def _detail(entry: Entry, now: float, lines: int) -> RenderableType:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    item = entry.item
    pretty = json.dumps(item.get("arguments"), indent=2, ensure_ascii=False, default=str).splitlines()
    visible = [_clean(line) for line in pretty[:lines]]
    if len(pretty) > lines:
        visible.append(f"… {len(pretty) - lines} more lines")
    left, urgent = _left(item, now)
    approvers = item.get("approvers") or 1
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="ellipsis")
    grid.add_row("requester", _who_in_full(item.get("requester")))
    grid.add_row("rule", _clean(f"{item.get('rule')}: {item.get('reason') or 'no reason given in the policy'}"))
    grid.add_row("approvers", f"{approvers} needed" + (" (distinct people)" if approvers != 1 else ""))
    grid.add_row("digest", _clean(f"sha256 {str(item.get('digest'))[:16]}…"))
    grid.add_row("time left", Text(left, style=urgent))
    grid.add_row("session", _clean(str(item.get("session") or "?")))
    grid.add_row("arguments", Text("\n".join(visible), no_wrap=True, overflow="ellipsis"))
    title = _clean(f"{entry.id}  {item.get('server')} / {item.get('tool')}")
    return Panel(grid, title=Text(title, style="bold"), title_align="left")


# -- the sessions ---------------------------------------------------------------------------------------------


async def poll() -> tuple[Entry, ...]:
    """What is pending in every session of this user, oldest first."""
    from relay.approval.local import pending_everywhere

    entries = [Entry(path, item) for path, item in await pending_everywhere()]
    return tuple(sorted(entries, key=lambda e: (_number(e.item.get("created_at")), e.id)))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


async def send(action: Decide) -> dict[str, Any]:
    """Send a decision to the session that holds the request; its answer, or an error as an answer."""
    from relay.approval.local import ask

    # The decision names the digest of the arguments that were shown: it releases that call only.
    request = {"op": "decide", "id": action.entry.id, "digest": action.entry.item.get("digest"),
               "approve": action.approve, "reason": action.reason}
    try:
        return await ask(action.entry.path, request)
    except (OSError, ValueError, TimeoutError) as exc:
        return {"error": f"the relay session holding {action.entry.id} did not answer ({type(exc).__name__})"}


# -- the terminal ---------------------------------------------------------------------------------------------


class KeyReader:
    """Keys from a terminal in cbreak mode (no Enter needed), waiting at most a given time for them."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _read(self) -> str:
        data = os.read(self._fd, 1024)
        if not data:
            return "\x04"  # the terminal is gone: as if Ctrl-D
        return self._decoder.decode(data)

    async def read(self, at_most: float) -> list[str]:
        """The keys pressed; none when `at_most` seconds pass without one."""
        text = ""
        with anyio.move_on_after(at_most):
            await anyio.wait_readable(self._fd)
            text = self._read()
        keys, rest = parse_keys(text)
        if rest:
            # An Esc alone, or an arrow key whose bytes were split across reads: wait briefly for the rest.
            with anyio.move_on_after(ESC_WAIT):
                await anyio.wait_readable(self._fd)
                rest += self._read()
            more, _ = parse_keys(rest, final=True)
            keys += more
        return keys


class _Watcher:
    def __init__(self, out: Console, fd: int) -> None:
        self.out = out
        self.fd = fd
        self.state = ViewState()  # kept here so that what was decided survives a Ctrl-C

    async def run(self) -> None:
        from rich.live import Live

        keys = KeyReader(self.fd)
        # Drawn by hand (auto_refresh off): the only thread is this one, and every redraw shows fresh state.
        with Live(console=self.out, screen=True, auto_refresh=False, redirect_stdout=False,
                  redirect_stderr=False) as live:
            next_poll = 0.0
            while True:
                if time.monotonic() >= next_poll:
                    self.state = with_pending(self.state, await poll())
                    next_poll = time.monotonic() + POLL_EVERY
                size = self.out.size
                live.update(render(self.state, time.time(), size.height, size.width), refresh=True)
                for key in await keys.read(TICK):
                    self.state, action = handle_key(self.state, key)
                    if isinstance(action, Quit):
                        return
                    if isinstance(action, Decide):
                        self.state = after_decision(self.state, action, await send(action))
                        next_poll = 0.0  # a decided request leaves the list at once


def watch(out: Console) -> None:
    """Run the view on this terminal (stdin for keys, `out` on stderr for the screen) until q or Ctrl-C, then
    repeat the decisions that were sent, so that they stay in the scrollback."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    watcher = _Watcher(out, fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        anyio.run(watcher.run)
    except KeyboardInterrupt:
        pass
    finally:
        # Also on Ctrl-C and on errors: a shell left without echo and line editing looks broken.
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    for line in watcher.state.done:
        out.print(_clean(line), markup=False, highlight=False)
