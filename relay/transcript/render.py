"""Reading a session transcript for people: its records as a timeline, a JSON export and an HTML audit report.

A transcript is untrusted input (it may have been tampered with): nothing here trusts its shape, every string
from it is escaped for the medium it goes to, and nothing is added that the transcript does not hold.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from relay.errors import RelayError, UsageError
from relay.transcript.format import FormatError, parse_body, split_line
from relay.transcript.ledger import LEDGER
from relay.transcript.verify import Result

COMMON = ("seq", "ts", "prev", "type")
DIRECTIONS = {"c2s": "agent -> server", "s2c": "server -> agent"}
SUMMARY_CHARS = 200


@dataclass(frozen=True)
class Entry:
    """One line of a session file: its record (without the message) and the parsed message, or why not."""

    line: int
    record: dict[str, Any] | None = None
    message: Any = None  # the parsed JSON-RPC message; None for records without one
    message_text: str | None = None  # a `message_text` that is not JSON, kept as text
    problem: str | None = None  # why the line is unreadable (record is None then)

    @property
    def type(self) -> str | None:
        return str(self.record.get("type")) if self.record is not None else None


@dataclass(frozen=True)
class Session:
    path: Path
    entries: list[Entry]
    torn: int = 0  # bytes of an incomplete last line

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def genesis(self) -> dict[str, Any]:
        first = self.entries[0] if self.entries else None
        return first.record if first is not None and first.record and first.type == "genesis" else {}

    @property
    def start(self) -> str | None:
        ts = self.genesis.get("ts")
        return ts if isinstance(ts, str) else None

    @property
    def server(self) -> dict[str, Any]:
        server = self.genesis.get("server")
        return server if isinstance(server, dict) else {}

    def client(self) -> tuple[str, str] | None:
        """Name and version of the client, from the recorded initialize request."""
        for entry in self.entries:
            msg = entry.message
            if (entry.record is not None and entry.record.get("dir") == "c2s" and isinstance(msg, dict)
                    and msg.get("method") == "initialize"):
                info = _dict(_dict(msg.get("params")).get("clientInfo"))
                return _text(info.get("name")), _text(info.get("version"))
        return None

    def tool_calls(self) -> int:
        count = 0
        for entry in self.entries:
            if entry.record is not None and entry.record.get("dir") == "c2s":
                msgs = entry.message if isinstance(entry.message, list) else [entry.message]
                count += sum(1 for m in msgs if isinstance(m, dict) and m.get("method") == "tools/call")
        return count


# -- finding and loading sessions ----------------------------------------------------------------------------

def session_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    # In start order: ids sort by their second only, and sessions often start within the same one.
    return sorted((p for p in directory.glob("*.jsonl") if p.name != LEDGER and p.is_file()),
                  key=lambda p: (_start_of(p), p.name))


def resolve(directory: Path, ref: str) -> Path:
    """A session by full id, unique id prefix, path to its file, or `latest`; UsageError if none or several."""
    given = Path(ref)
    if ref.endswith(".jsonl") or "/" in ref:
        if given.name == LEDGER:
            raise UsageError(f"{ref} is the host ledger, not a session")
        if given.is_file():
            return given
        if "/" not in ref and (directory / ref).is_file():
            return directory / ref
        raise UsageError(f"{ref} does not exist")
    files = session_files(directory)
    if ref == "latest":
        if not files:
            raise UsageError(f"no sessions in {directory}")
        return max(files, key=lambda p: (_start_of(p), p.name))
    exact = [p for p in files if p.stem == ref]
    matches = exact or [p for p in files if p.stem.startswith(ref)]
    if not matches:
        raise UsageError(f"no session {ref!r} in {directory}", hint="`relay transcripts list` shows them")
    if len(matches) > 1:
        names = ", ".join(p.stem for p in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise UsageError(f"{ref!r} matches {len(matches)} sessions ({names})", hint="give more of the id")
    return matches[0]


def _start_of(path: Path) -> str:
    try:
        with path.open("rb") as f:
            rec = parse_body(split_line(f.readline().rstrip(b"\n"))[0])
        return str(rec["ts"])
    except (OSError, FormatError):
        return ""


def load(path: Path) -> Session:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RelayError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse(path, data)


def parse(path: Path, data: bytes) -> Session:
    keep = data.rfind(b"\n") + 1
    lines = data[:keep].split(b"\n")[:-1]
    return Session(path, [_entry(n, line) for n, line in enumerate(lines, 1)], len(data) - keep)


def _entry(n: int, line: bytes) -> Entry:
    try:
        rec = parse_body(split_line(line)[0])
    except FormatError as exc:
        return Entry(n, problem=str(exc))
    if "message" in rec:
        return Entry(n, rec, message=rec.pop("message"))
    if isinstance(rec.get("message_text"), str):
        text = rec.pop("message_text")
        try:
            return Entry(n, rec, message=json.loads(text))
        except ValueError:
            return Entry(n, rec, message_text=text)
    return Entry(n, rec)


# -- the timeline -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    line: int
    kind: str  # genesis, message, error, approval, ack, seal, recovery, unreadable, or another record type
    ts: str = ""
    offset: str = ""
    direction: str = ""
    what: str = ""
    summary: str = ""
    notes: list[str] = field(default_factory=list)


def timeline(session: Session) -> list[Row]:
    times = [_time(e.record.get("ts")) for e in session.entries if e.record is not None]
    start = _time(session.start) or next((t for t in times if t is not None), None)
    rows = []
    for entry in session.entries:
        rec = entry.record
        if rec is None:
            rows.append(Row(entry.line, "unreadable", what="unreadable",
                            summary=f"unreadable line {entry.line}: {entry.problem}"))
            continue
        ts = _text(rec.get("ts"))
        t = _time(ts)
        offset = _offset((t - start).total_seconds()) if t is not None and start is not None else ""
        rows.append(_row(entry, rec, ts, offset))
    if session.torn:
        rows.append(Row(len(session.entries) + 1, "unreadable", what="unreadable",
                        summary=f"incomplete last line ({session.torn} bytes), as a crash mid-write leaves it"))
    return rows


def _row(entry: Entry, rec: dict[str, Any], ts: str, offset: str) -> Row:
    type_ = entry.type or ""
    base = Row(entry.line, type_, ts, offset)
    if type_ == "message":
        what, summary = _message(rec, entry)
        return _with(base, direction=DIRECTIONS.get(_text(rec.get("dir")), _text(rec.get("dir"))), what=what,
                     summary=summary, notes=_notes(rec.get("notes")))
    if type_ == "genesis":
        return _with(base, direction="relay", what="session start", summary=_genesis(rec))
    if type_ == "error":
        event = _text(rec.get("event")) or "?"
        return _with(base, direction="relay", what=f"relay error: {event}", summary=_fields(rec, ("event",)))
    if type_ == "approval":
        return _with(base, direction="relay", what="approval", summary=_fields(rec))
    if type_ == "ack":
        rest = _fields(rec, ("collector",))
        return _with(base, direction="collector", what="ack",
                     summary=f"acknowledged by {_url(rec.get('collector'))}" + (f": {rest}" if rest else ""))
    if type_ == "seal":
        return _with(base, direction="relay", what="seal",
                     summary=f"sealed: {_text(rec.get('records'))} records, reason {_text(rec.get('reason'))}")
    if type_ == "recovery":
        torn = rec.get("torn_bytes")
        return _with(base, direction="relay", what="recovery",
                     summary=f"recovered after a {_text(rec.get('reason')) or 'crash'}: last intact record "
                             f"{_text(rec.get('last_seq'))}"
                             + (f", an incomplete last line of {torn} bytes cut off" if torn else "")
                             + f"; by relay pid {_text(rec.get('pid'))} at its next start")
    return _with(base, direction="relay", what=type_, summary=_fields(rec))


def _with(row: Row, **changes: Any) -> Row:
    return Row(**{**row.__dict__, **changes})


def _message(rec: dict[str, Any], entry: Entry) -> tuple[str, str]:
    method, tool, kind = _text(rec.get("method")), _text(rec.get("tool")), _text(rec.get("kind"))
    what = " ".join(p for p in (method, tool) if p) or kind or "message"
    if kind in ("response", "error") and what != kind:
        what += f" ({kind})"
    msg = entry.message
    if entry.message_text is not None:
        return what, "a message that is not JSON: " + _clip(entry.message_text)
    if kind == "batch" or isinstance(msg, list):
        items = msg if isinstance(msg, list) else []
        methods = [_text(m.get("method")) for m in items if isinstance(m, dict) and m.get("method")]
        return what or "batch", f"batch of {len(items)} messages" + (f": {', '.join(methods)}" if methods else "")
    if not isinstance(msg, dict):
        return what, _clip(_compact(msg))
    if kind == "error" or "error" in msg:
        err = _dict(msg.get("error"))
        code = err.get("code")
        return what, f"error {_text(code)}: {_clip(_text(err.get('message')))}" + (
            f" (data: {_clip(_compact(err['data']), 120)})" if "data" in err else "")
    if kind == "response" or "result" in msg:
        return what, _result(method, msg.get("result"))
    params = msg.get("params")
    if method == "tools/call":
        return what, _clip(_compact(_dict(params).get("arguments", {})))
    if method == "initialize":
        p = _dict(params)
        info = _dict(p.get("clientInfo"))
        return what, (f"client {_text(info.get('name'))} {_text(info.get('version'))}, "
                      f"protocol {_text(p.get('protocolVersion'))}")
    return what, _clip(_compact(params)) if params not in (None, {}, []) else ""


def _result(method: str, result: Any) -> str:
    res = _dict(result)
    if method == "initialize":
        info = _dict(res.get("serverInfo"))
        return (f"server {_text(info.get('name'))} {_text(info.get('version'))}, "
                f"protocol {_text(res.get('protocolVersion'))}")
    if method == "tools/list" and isinstance(res.get("tools"), list):
        names = [_text(t.get("name")) for t in res["tools"] if isinstance(t, dict)]
        return _clip(f"{len(names)} tools: {', '.join(names)}")
    content = res.get("content")
    if isinstance(content, list):
        parts = []
        for item in content:
            c = _dict(item)
            if c.get("type") == "text":
                parts.append(_text(c.get("text")))
            else:
                parts.append(f"[{_text(c.get('type')) or 'content'}"
                             + (f" {_text(_dict(c.get('resource')).get('uri') or c.get('uri'))}"
                                if c.get("type") in ("resource", "resource_link") else "") + "]")
        text = " | ".join(parts) or _compact(res.get("structuredContent", content))
        return ("tool error: " if res.get("isError") is True else "") + _clip(text)
    return _clip(_compact(result)) if result not in (None, {}) else "(empty result)"


def _notes(notes: Any) -> list[str]:
    out = []
    for note in notes if isinstance(notes, list) else []:
        n = _dict(note)
        guard = _text(n.get("guard")) or "guard"
        actions = [_dict(a) for a in n.get("actions", [])] if isinstance(n.get("actions"), list) else []
        counts: dict[str, int] = {}
        for a in actions:
            rule = _text(a.get("rule")) or "?"
            count = a.get("count")
            counts[rule] = counts.get(rule, 0) + (count if type(count) is int else 1)
        label = "masked" if guard == "masking" else guard
        if counts:
            out.append(f"{label}: " + ", ".join(f"{c} x {rule}" for rule, c in counts.items()))
        else:
            out.append(f"{label}: " + _clip(_compact({k: v for k, v in n.items() if k != "guard"}), 160))
    return out


def _genesis(rec: dict[str, Any]) -> str:
    server = _dict(rec.get("server"))
    where = server.get("url") or server.get("command")
    identity = _dict(rec.get("identity"))
    who = _text(identity.get("name") or identity.get("subject")) if identity else ""
    return (f"server {_text(server.get('name'))} ({_text(server.get('transport'))}"
            + (f" {_text(where)}" if where else "") + f"), relay {_text(rec.get('relay'))}, "
            f"{_text(rec.get('user'))}@{_text(rec.get('host'))} pid {_text(rec.get('pid'))}"
            + (f", identity {who}" if who else ""))


def _fields(rec: dict[str, Any], skip: Iterable[str] = ()) -> str:
    omit = set(COMMON) | set(skip)
    return _clip(", ".join(f"{k} {_text(v) if isinstance(v, str) else _compact(v)}"
                           for k, v in rec.items() if k not in omit), 400)


# -- the header and the verdict -----------------------------------------------------------------------------

def header(session: Session) -> list[tuple[str, str]]:
    g = session.genesis
    server = session.server
    client = session.client()
    identity = _dict(g.get("identity"))
    where = server.get("url") or server.get("command")
    pairs = [
        ("session", session.id),
        ("file", str(session.path)),
        ("started", _text(session.start)),
        ("host", _text(g.get("host"))),
        ("user", _text(g.get("user"))),
        ("identity", " ".join(_text(identity.get(k)) for k in ("name", "subject", "issuer") if identity.get(k))
         if identity else "none (no login)"),
        ("relay", _text(g.get("relay"))),
        ("server", (f"{_text(server.get('name'))} ({_text(server.get('transport'))}"
                    + (f" {_text(where)}" if where else "") + ")") if server else ""),
        ("client", " ".join(client) if client else ""),
        ("records", str(len(session.entries))),
        ("tool calls", str(session.tool_calls())),
    ]
    return [(k, v) for k, v in pairs if v]


def verdict(result: Result) -> tuple[str, str]:
    """The banner word (OK, FAIL, INCOMPLETE, UNVERIFIED) and a one-line explanation."""
    if result.outcome in ("sealed", "recovered"):
        return "OK", f"{result.outcome}, {result.records} records: signatures and hash chain intact"
    if result.outcome == "incomplete":
        return "INCOMPLETE", f"{result.records} records; {result.reason}"
    if result.outcome == "tampered":
        at = f"record {result.record}: " if result.record is not None else ""
        return "FAIL", f"tampered: {at}{result.reason}"
    return "UNVERIFIED", _text(result.reason)


def unverified(session: Session, reason: str) -> Result:
    """A stand-in result when there is no trust anchor to verify against (never turned into an exit code)."""
    return Result(session.path, "unverified", records=len(session.entries), session=session.id, reason=reason)


# -- the list -------------------------------------------------------------------------------------------------

def list_row(session: Session) -> dict[str, Any]:
    """What `relay transcripts list` shows about one session (without its verification)."""
    return {"session": session.id, "path": str(session.path), "start": session.start,
            "server": _text(session.server.get("name")) or None, "records": len(session.entries),
            "tool_calls": session.tool_calls()}


def list_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`list_row`s (with a verification "label") as aligned lines under a heading."""
    table = [("SESSION", "STARTED (UTC)", "SERVER", "RECORDS", "TOOL CALLS", "OUTCOME")]
    for row in rows:
        start = _text(row.get("start"))[:19].replace("T", " ") or "-"
        table.append((_text(row.get("session")), start, _text(row.get("server")) or "-", _text(row.get("records")),
                      _text(row.get("tool_calls")), _text(row.get("label"))))
    widths = [max(len(cells[i]) for cells in table) for i in range(5)]
    return ["  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(cells[:5], widths, strict=True)))
            + "  " + cells[5] for cells in table]


def ledger_warnings(results: Sequence[Result]) -> list[str]:
    """Ledger failures among `verify_paths` results, as warnings for the sessions beside it."""
    return [f"the host ledger {r.path} does not verify: " + (f"record {r.record}: " if r.record else "")
            + str(r.reason) for r in results if r.path.name == LEDGER and r.outcome != "sealed"]


# -- exports ------------------------------------------------------------------------------------------------

def export_json(session: Session, result: Result) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    for entry in session.entries:
        if entry.record is None:
            records.append({"line": entry.line, "unreadable": entry.problem})
        elif entry.message_text is not None:
            records.append({**entry.record, "message_text": entry.message_text})
        elif entry.message is not None:
            records.append({**entry.record, "message": entry.message})
        else:
            records.append(dict(entry.record))
    if session.torn:
        records.append({"line": len(session.entries) + 1,
                        "unreadable": f"incomplete last line ({session.torn} bytes)"})
    return {"session": session.id, "verification": result.as_json(), "records": records}


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:0 24px 48px}
.banner{padding:28px 24px;color:#fff}
.banner .word{font-size:44px;font-weight:800;letter-spacing:.04em;margin:0}
.banner p{margin:6px 0 0;font-size:16px}
.banner ul{margin:8px 0 0;padding-left:20px}
.ok{background:#1b7f3b}.fail{background:#b3261e}.incomplete{background:#a35c00}.unverified{background:#5f6368}
h2{font-size:18px;margin:28px 0 10px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dt{font-weight:600;color:#555}dd{margin:0;word-break:break-all}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e3e3;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
td.num,td.off{white-space:nowrap;font-variant-numeric:tabular-nums;color:#555}
td.dir{white-space:nowrap}
td.sum{word-break:break-word}
.note{display:inline-block;margin:3px 6px 0 0;padding:1px 6px;border-radius:4px;background:#e8f0fe;color:#174ea6}
tr.unreadable td,tr.error td{background:#fdecea}
tr.seal td,tr.recovery td,tr.genesis td{background:#f3f3f3}
tr.bad td{outline:2px solid #b3261e}
details{margin-top:4px}summary{cursor:pointer;color:#555}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:8px;border-radius:4px;margin:4px 0 0;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
footer{margin-top:32px;color:#777;font-size:12px}
"""


def html_report(session: Session, result: Result, *, generator: str = "relay") -> str:
    """One self-contained HTML page: no scripts, no external resources, everything from the file escaped."""
    e = _escape
    word, detail = verdict(result)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Defence in depth: even markup that escaped escaping could neither run nor load anything.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>relay transcript {e(session.id)}: {e(word)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header class="banner {e(word.lower())}"><p class="word">{e(word)}</p>',
        f"<p>{e(detail)}</p>",
    ]
    if result.record is not None:
        lines.append(f'<p>first bad record: <a style="color:#fff" href="#r{int(result.record)}">'
                     f"record {int(result.record)}</a></p>")
    if result.warnings:
        lines.append("<ul>" + "".join(f"<li>warning: {e(w)}</li>" for w in result.warnings) + "</ul>")
    lines.append("</header><main>")
    lines.append("<h2>Session</h2><dl>")
    for k, v in [*header(session), ("verification", f"{word}: {detail}")]:
        lines.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
    lines.append("</dl>")
    lines.append("<h2>Timeline</h2><table><thead><tr><th>#</th><th>offset</th><th>time (UTC)</th>"
                 "<th>direction</th><th>what</th><th>summary</th></tr></thead><tbody>")
    by_line = {entry.line: entry for entry in session.entries}
    for row in timeline(session):
        classes = [row.kind] + (["bad"] if result.record == row.line else [])
        cell = [f"<div>{e(row.summary)}</div>"]
        cell += [f'<span class="note">{e(n)}</span>' for n in row.notes]
        entry = by_line.get(row.line)
        if entry is not None and entry.record is not None:
            if entry.message is not None:
                cell.append(f"<details><summary>message JSON</summary><pre>{e(_pretty(entry.message))}</pre>"
                            "</details>")
            elif entry.message_text is not None:
                cell.append(f"<details><summary>message text</summary><pre>{e(entry.message_text)}</pre>"
                            "</details>")
            cell.append(f"<details><summary>record</summary><pre>{e(_pretty(entry.record))}</pre></details>")
        lines.append(f'<tr id="r{row.line}" class="{e(" ".join(classes))}"><td class="num">{row.line}</td>'
                     f'<td class="off">{e(row.offset)}</td><td class="off">{e(row.ts)}</td>'
                     f'<td class="dir">{e(row.direction)}</td><td>{e(row.what)}</td>'
                     f'<td class="sum">{"".join(cell)}</td></tr>')
    lines.append("</tbody></table>")
    lines.append(f"<footer>Report by {e(generator)} from {e(str(session.path))}. Messages are shown as the "
                 "transcript holds them: masked by relay before they were recorded.</footer>")
    lines.append("</main></body></html>")
    return "\n".join(lines) + "\n"


# -- small helpers --------------------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")


def _safe(text: str) -> str:
    """No terminal escapes or bidi overrides from an untrusted file: shown as \\xNN / \\uNNNN instead."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return _safe(value if isinstance(value, str) else _compact(value))


def _compact(value: Any) -> str:
    return _safe(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _clip(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = _SPACE.sub(" ", _safe(text)).strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()}... (+{len(text) - limit} chars)"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _url(value: Any) -> str:
    """A collector URL without user info, query or fragment: those may carry credentials."""
    text = _text(value)
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", "")) if parts.scheme else text
    except ValueError:
        return text


def _time(ts: Any) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None


def _offset(seconds: float) -> str:
    if seconds < 0:
        return f"-{_offset(-seconds)[1:]}"
    if seconds < 60:
        return f"+{seconds:.3f}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"+{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"+{minutes}:{secs:06.3f}"
