"""relay.transcript.verify against a tamper matrix, cross-checked by an auditor's verifier written from the doc.

Every case builds real transcripts (SessionWriter, Recorder, recover, `relay keys rotate`) on throwaway host keys,
damages them the way an intruder or a crash would, and asserts the outcome, the exit code and the first bad
record, from relay's verifier and from tests/transcript/independent_verifier.py, which must agree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.jsonrpc import Direction, Message
from relay.pipeline import Context
from relay.transcript.format import public_bytes
from relay.transcript.hostkey import HostKeys, load_public_pem, public_pem
from relay.transcript.recovery import recover
from relay.transcript.verify import Result, Trust, verify_file, verify_paths
from relay.transcript.writer import SessionWriter
from tests.support.processes import RELAY, relay_env
from tests.support.transcripts import SERVER, recorder, records
from tests.transcript import independent_verifier as iv

pytestmark = pytest.mark.anyio

MESSAGES = 6  # genesis + 6 messages + seal: records 1..8
LAST = MESSAGES + 2


def request(i: int) -> tuple[dict[str, Any], bytes]:
    return ({"dir": "c2s", "kind": "request", "id": i, "method": "x"},
            b'{"jsonrpc":"2.0","id":%d,"method":"x"}' % i)


def session(directory: Path, key: Ed25519PrivateKey, name: str = "s", *, messages: int = MESSAGES,
            seal: bool = True) -> SessionWriter:
    w = SessionWriter(directory, name, SERVER, key)
    for i in range(1, messages + 1):
        w.write("message", *request(i))
    if seal:
        w.seal("client_closed", key)
    return w


def sealed(directory: Path, key: Ed25519PrivateKey, name: str = "s", messages: int = MESSAGES) -> Path:
    return session(directory, key, name, messages=messages).path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def put(path: Path, new: Sequence[bytes]) -> None:
    path.write_bytes(b"".join(new))


def b64u(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def pub(key: Ed25519PrivateKey) -> Ed25519PublicKey:
    return key.public_key()


class Verdict(NamedTuple):
    """Compared as `v[:4] == (exit_code, outcome, file, record)`."""

    exit_code: int
    outcome: str  # the worst outcome
    file: str | None  # name of the first file reported tampered
    record: int | None  # its first bad record
    relay: list[Result]
    independent: list[iv.Result]


def _exit(results: Sequence[Result]) -> int:
    return max((r.exit_code for r in results), key=lambda c: (c == 1, c), default=0)  # as relay verify does


def _worst(outcomes: Sequence[str]) -> str:
    return max(outcomes, key=lambda o: iv.RANK[o])


def check(paths: Sequence[Path], keys: Sequence[Ed25519PublicKey], *, all_signatures: bool = False) -> Verdict:
    """Both verifiers on the same paths; they must agree, and the agreed verdict is returned."""
    ours = verify_paths(list(paths), Trust(keys), all_signatures=all_signatures)
    theirs, theirs_exit = iv.verify_paths(list(paths), [public_bytes(k) for k in keys],
                                          all_signatures=all_signatures)
    summary = [(r.path.name, r.outcome, r.record, r.reason, r.warnings) for r in ours]
    assert _exit(ours) == theirs_exit, (summary, theirs)
    assert _worst([r.outcome for r in ours]) == _worst([r.outcome for r in theirs]), (summary, theirs)
    bad = next((r for r in ours if r.outcome == "tampered"), None)
    ibad = next((r for r in theirs if r.outcome == "tampered"), None)
    if bad is None or ibad is None:
        assert bad is None and ibad is None, (summary, theirs)
        assert [(r.path.name, r.outcome) for r in ours] == [(r.path.name, r.outcome) for r in theirs]
        return Verdict(theirs_exit, _worst([r.outcome for r in ours]), None, None, ours, theirs)
    assert bad.path.name == ibad.path.name, (summary, theirs)
    if bad.record is not None and ibad.record is not None:
        assert bad.record == ibad.record, (summary, theirs)
    assert bad.record == ibad.record, (summary, theirs)  # here both always name one, or neither
    return Verdict(theirs_exit, "tampered", bad.path.name, bad.record, ours, theirs)


@pytest.fixture
def host() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# -- intact, incomplete, recovered --------------------------------------------------------------------------


def test_intact_sealed(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    path = sealed(tmp_path, host)
    assert [r["type"] for r in records(path)] == ["genesis"] + ["message"] * MESSAGES + ["seal"]
    assert check([tmp_path], [pub(host)])[:4] == (0, "sealed", None, None)
    assert check([path], [pub(host)])[:4] == (0, "sealed", None, None)
    assert check([tmp_path], [pub(host)], all_signatures=True)[:4] == (0, "sealed", None, None)


async def test_intact_through_the_recorder_guard(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    rec = recorder(tmp_path, "r", key=host)
    for i in range(1, 4):
        raw = b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % i
        await rec.intercept(Message.parse(raw, Direction.CLIENT_TO_SERVER), Context(Direction.CLIENT_TO_SERVER))
    await rec.aclose()
    assert [r["type"] for r in records(tmp_path / "r.jsonl")] == ["genesis", "message", "message", "message", "seal"]
    assert check([tmp_path], [pub(host)])[:4] == (0, "sealed", None, None)


def test_intact_unsealed_is_incomplete(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    w = session(tmp_path, host, seal=False)  # still running: its writer holds the lock
    try:
        v = check([tmp_path], [pub(host)])
        assert v[:4] == (3, "incomplete", None, None)
        assert "still running" in (v.relay[0].reason or "")
    finally:
        w._abandon()


def test_recovered_after_a_crash(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    session(tmp_path, host, seal=False)._abandon()  # killed: fd closed, lock and session key gone
    assert check([tmp_path], [pub(host)])[:2] == (3, "incomplete")
    assert recover(tmp_path, host) == ["s"]
    v = check([tmp_path], [pub(host)])
    assert v[:4] == (0, "recovered", None, None)
    assert any("crash" in w for w in v.relay[0].warnings)
    assert any("crash" in w for w in v.independent[0].warnings)
    assert check([tmp_path], [pub(host)], all_signatures=True)[:2] == (0, "recovered")


# -- the tamper matrix: one sealed session in a directory with its ledger ----------------------------------


def _swap_sig(line: bytes) -> bytes:
    """A valid Ed25519 signature, but over different content (by an unrelated key)."""
    other = Ed25519PrivateKey.generate().sign(b"relay.transcript.v1.record\x00" + bytes(32))
    return line[:-89] + b64u(other) + b'"}\n'


def _replace(n: int, old: bytes, new: bytes) -> Callable[[list[bytes]], list[bytes]]:
    def edit(ls: list[bytes]) -> list[bytes]:
        assert old in ls[n - 1]
        ls[n - 1] = ls[n - 1].replace(old, new, 1)
        return ls
    return edit


def _set(n: int, line: Callable[[bytes], bytes]) -> Callable[[list[bytes]], list[bytes]]:
    def edit(ls: list[bytes]) -> list[bytes]:
        ls[n - 1] = line(ls[n - 1])
        return ls
    return edit


# name: (edit of the session's lines, expected first bad record). With the ledger present everything is exit 1.
# A change to record k breaks record k+1's `prev`; record k's own signature then fails, so k is named.
EDITS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], int]] = {
    "body value": (_replace(4, b'"id":3', b'"id":4'), 4),
    "message byte": (_replace(4, b'"jsonrpc":"2.0"', b'"jsonrpc":"2.1"'), 4),
    "signature (middle)": (_set(4, _swap_sig), 4),
    "signature (seal)": (_set(LAST, _swap_sig), LAST),
    "body of the seal": (_replace(LAST, b'"reason":"client_closed"', b'"reason":"upstream_closed"'), LAST),
    "deleted middle": (lambda ls: ls[:3] + ls[4:], 4),
    "deleted last (seal)": (lambda ls: ls[:-1], LAST),  # the ledger names the seal: cut short
    "inserted copy": (lambda ls: [*ls[:4], ls[1], *ls[4:]], 5),
    "duplicated line": (lambda ls: [*ls[:4], ls[3], *ls[4:]], 5),
    "two lines swapped": (lambda ls: [*ls[:3], ls[4], ls[3], *ls[5:]], 4),
    "not JSON": (_set(4, lambda _: b"hello, auditor\n"), 4),
    "wrong frame": (_replace(4, b'{"rec":', b'{"record":'), 4),
    # RFC 8259 lets an object begin with whitespace, so ' {...}' is a BODY; the chain catches the change.
    "space before BODY": (_replace(4, b'{"rec":', b'{"rec": '), 4),
    "space in frame": (_replace(4, b'{"rec":', b'{"rec" :'), 4),
    "trailing spaces": (_set(4, lambda ln: ln[:-1] + b"  \n"), 4),
    "CRLF line end": (_set(4, lambda ln: ln[:-1] + b"\r\n"), 4),
    "duplicate key in body": (_replace(4, b'"kind":"request"', b'"kind":"request","kind":"response"'), 4),
    "padded signature": (_set(4, lambda ln: ln[:-3] + b'=="}\n'), 4),
    "cut short (seal + 2)": (lambda ls: ls[:-3], LAST - 2),
    "appended after the seal": (lambda ls: [*ls, ls[2]], LAST + 1),
    "garbage after the seal": (lambda ls: [*ls, b'{"rec":{"seq":9'], LAST + 1),
    "empty line after the seal": (lambda ls: [*ls, b"\n"], LAST + 1),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_tampered_session(tmp_path: Path, host: Ed25519PrivateKey, name: str) -> None:
    path = sealed(tmp_path, host)
    edit, record = EDITS[name]
    put(path, edit(lines(path)))
    for target in ([tmp_path], [path]):  # the directory, and the file alone (its ledger is next to it)
        v = check(target, [pub(host)])
        assert (v.exit_code, v.outcome, v.file, v.record) == (1, "tampered", "s.jsonl", record), v.relay
    assert check([tmp_path], [pub(host)], all_signatures=True)[:4] == (1, "tampered", "s.jsonl", record)


@pytest.mark.parametrize("cut", [1, 3])
def test_cut_short_without_the_ledger_is_only_incomplete(tmp_path: Path, host: Ed25519PrivateKey, cut: int) -> None:
    """Without the ledger nothing says a seal existed: the doc's outcome is incomplete (exit 3), no more."""
    path = sealed(tmp_path, host)
    put(path, lines(path)[:-cut])
    (tmp_path / "ledger.jsonl").unlink()
    assert check([tmp_path], [pub(host)])[:4] == (3, "incomplete", None, None)
    assert check([path], [pub(host)])[:4] == (3, "incomplete", None, None)


def test_record_spliced_from_another_session(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    path, other = sealed(tmp_path, host, "s"), sealed(tmp_path, host, "t")
    ls = lines(path)
    ls[3] = lines(other)[3]  # same seq, same host key, another session's chain and session key
    put(path, ls)
    assert check([tmp_path], [pub(host)])[:4] == (1, "tampered", "s.jsonl", 4)
    # A whole file renamed to pose as another session: its genesis names the real one.
    put(path, lines(other))
    assert check([path], [pub(host)])[:4] == (1, "tampered", "s.jsonl", 1)


def test_foreign_host_key(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    foreign = Ed25519PrivateKey.generate()
    elsewhere = tmp_path / "foreign"
    sealed(elsewhere, foreign, "f")
    # A directory written entirely under another host key: its ledger already fails.
    assert check([elsewhere], [pub(host)])[:4] == (1, "tampered", "ledger.jsonl", 1)
    # The same file dropped into a trusted directory: record 1 is certified by an untrusted key.
    legit = tmp_path / "legit"
    sealed(legit, host)
    shutil.copy(elsewhere / "f.jsonl", legit / "f.jsonl")
    v = check([legit], [pub(host)])
    assert v[:4] == (1, "tampered", "f.jsonl", 1)
    assert "not trusted" in (next(r for r in v.relay if r.path.name == "f.jsonl").reason or "")
    assert check([elsewhere], [pub(foreign)])[:2] == (0, "sealed")  # with the right key, it is fine


def test_session_file_deleted_while_the_ledger_names_it(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    sealed(tmp_path, host, "a")
    sealed(tmp_path, host, "b").unlink()
    v = check([tmp_path], [pub(host)])
    assert v[:4] == (1, "tampered", "b.jsonl", None)
    assert "missing" in (v.relay[-1].reason or "") and "missing" in v.independent[-1].reason


def _ledger_line(directory: Path, key: Ed25519PrivateKey, fields: dict[str, Any], *, host_key: bytes | None = None,
                 signer: Ed25519PrivateKey | None = None) -> None:
    """Append a correctly chained ledger record, signed by whoever the forger is."""
    path = directory / "ledger.jsonl"
    last = lines(path)[-1][:-1]
    body, sig = last[7:-96], base64.urlsafe_b64decode(last[-88:-2] + b"==")
    digest = hashlib.sha256(body).digest()
    prev = hashlib.sha256(digest + sig).hexdigest()
    seq = json.loads(body)["seq"] + 1
    fields = {**fields, "host_key": (host_key or b64u(public_bytes(key.public_key()))).decode()}
    new = (f'{{"seq":{seq},"ts":"2026-11-25T10:00:00.000000Z","prev":"{prev}",' + json.dumps(
        fields, separators=(",", ":"))[1:]).encode()
    s = (signer or key).sign(b"relay.transcript.v1.record\x00" + hashlib.sha256(new).digest())
    with path.open("ab") as f:
        f.write(b'{"rec":' + new + b',"sig":"' + b64u(s) + b'"}\n')


def test_forged_ledger_lines(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    sealed(tmp_path, host)
    pristine = (tmp_path / "ledger.jsonl").read_bytes()
    intruder = Ed25519PrivateKey.generate()
    real = b64u(public_bytes(host.public_key()))
    forgeries: list[Callable[[], None]] = [
        # A ghost session, signed by the intruder's own key (an untrusted signer).
        lambda: _ledger_line(tmp_path, intruder, {"type": "open", "session": "ghost", "genesis": "0" * 64}),
        # A seal naming a shorter session, claiming the real host key but not signed by it.
        lambda: _ledger_line(tmp_path, intruder, {"type": "seal", "session": "s", "records": 3, "head": "0" * 64},
                             host_key=real),
        # A rotation to the intruder's key with an endorsement that is not even base64 (crashed verify once).
        lambda: _ledger_line(tmp_path, intruder, {"type": "rotate", "new_key": real.decode(), "endorsement": "!"}),
        # A rotation to the intruder's key, signed by the intruder: neither side is trusted.
        lambda: _ledger_line(tmp_path, intruder, {"type": "rotate", "new_key": b64u(public_bytes(
            Ed25519PrivateKey.generate().public_key())).decode(), "endorsement": b64u(bytes(64)).decode()}),
    ]
    for forge in forgeries:
        (tmp_path / "ledger.jsonl").write_bytes(pristine)
        forge()
        assert check([tmp_path], [pub(host)])[:4] == (1, "tampered", "ledger.jsonl", 3)
        assert check([tmp_path / "s.jsonl"], [pub(host)])[:4] == (1, "tampered", "ledger.jsonl", 3)
    # A ledger record edited in place: its own signature (it is the last) fails.
    (tmp_path / "ledger.jsonl").write_bytes(pristine.replace(b'"records":8', b'"records":7'))
    assert check([tmp_path], [pub(host)])[:4] == (1, "tampered", "ledger.jsonl", 2)
    # The session's ledger lines removed: the file is no longer named.
    (tmp_path / "ledger.jsonl").write_bytes(b"")
    assert check([tmp_path], [pub(host)])[:4] == (1, "tampered", "s.jsonl", 1)


# -- records that are validly signed but break the rules (forged by the holder of the keys) -----------------


def forge(path: Path, host: Ed25519PrivateKey, bodies: Sequence[str], *, bad_sig_at: int | None = None,
          genesis_edit: Callable[[str], str] = lambda g: g) -> Path:
    """A session file written by hand from the doc: `bodies` are the members after `type` (genesis is made
    here, then passed through `genesis_edit`). The record numbered `bad_sig_at` gets a valid signature over
    other content, chained as it is."""
    sk = Ed25519PrivateKey.generate()
    skp, hp = public_bytes(sk.public_key()), public_bytes(host.public_key())
    cert = host.sign(b"relay.transcript.v1.session-key\x00" + path.stem.encode() + b"\x00" + skp)
    genesis = (f'"genesis","format":"relay-transcript/1","session":"{path.stem}","relay":"0","host":"h",'
               f'"user":"u","pid":1,"identity":null,"server":{{"name":"x","transport":"stdio","command":"x"}},'
               f'"session_key":"{b64u(skp).decode()}","host_key":"{b64u(hp).decode()}",'
               f'"cert":"{b64u(cert).decode()}","fsync":"always"')
    out, prev = [], "0" * 64
    bodies = [b.replace("HOST_KEY", b64u(hp).decode()) for b in bodies]
    for seq, rest in enumerate([genesis_edit(genesis), *bodies], 1):
        body = f'{{"seq":{seq},"ts":"2026-11-25T10:00:00.000000Z","prev":"{prev}","type":{rest}}}'.encode()
        digest = hashlib.sha256(body).digest()
        signed = digest if seq != bad_sig_at else hashlib.sha256(b"other content").digest()
        sig = (host if '"recovery"' in rest[:11] else sk).sign(b"relay.transcript.v1.record\x00" + signed)
        out.append(b'{"rec":' + body + b',"sig":"' + b64u(sig) + b'"}\n')
        prev = hashlib.sha256(digest + sig).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    put(path, out)
    return path


MSG = '"message","dir":"s2c","kind":"notification","message":{"jsonrpc":"2.0","method":"n"}'


@pytest.mark.parametrize(("bodies", "exit_code", "record"), [
    ([MSG, '"seal","records":3,"reason":"client_closed"'], 0, None),  # the forge itself is sound
    ([MSG, '"recovery","last_seq":2,"torn_bytes":0,"reason":"crash","pid":1,"host_key":"HOST_KEY"'], 0, None),
    ([MSG], 3, None),
    ([MSG.replace('"kind"', '"dir":"c2s","kind"'), '"seal","records":3,"reason":"client_closed"'], 1, 2),
    ([MSG, '"seal","records":3,"reason":"client_closed"', MSG], 1, 4),  # after the seal, chained and signed
    ([MSG, '"recovery","last_seq":2,"torn_bytes":0,"reason":"crash","pid":1,"host_key":"HOST_KEY"', MSG], 1, 4),
    ([MSG, '"seal","records":2,"reason":"client_closed"'], 1, 3),  # the seal miscounts
    ([MSG, '"recovery","last_seq":1,"torn_bytes":0,"reason":"crash","pid":1,"host_key":"HOST_KEY"'], 1, 3),
    ([MSG, '"genesis","format":"relay-transcript/1"', '"seal","records":4,"reason":"client_closed"'], 1, 3),
])
def test_validly_signed_rule_breakers(tmp_path: Path, host: Ed25519PrivateKey, bodies: list[str], exit_code: int,
                                      record: int | None) -> None:
    path = forge(tmp_path / "f.jsonl", host, bodies)  # no ledger here: steps 1 to 4 only
    v = check([path], [pub(host)])
    assert (v.exit_code, v.record) == (exit_code, record), v.relay


def test_a_bad_cert_or_key_text_is_tampered_not_a_crash(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    """Validly chained and signed (by a session key anyone can make), with a cert or key that is not base64."""
    for old, new in [('"cert":"', '"cert":"!'), ('"cert":"', '"cert":1,"x":"'), ('"host_key":"', '"host_key":"!'),
                     ('"session_key":"', '"session_key":"!'), (',"cert":"', ',"cert":"A')]:
        def edit(genesis: str, old: str = old, new: str = new) -> str:
            return genesis.replace(old, new, 1)
        path = forge(tmp_path / "f.jsonl", host, [MSG, '"seal","records":3,"reason":"client_closed"'],
                     genesis_edit=edit)
        assert check([path], [pub(host)])[:4] == (1, "tampered", "f.jsonl", 1), (old, new)


def test_all_signatures(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    """The doc's trade-off: by default the last signature vouches for the chain; a relay (the only holder of the
    session key) that signed a middle record wrongly is caught only by --all-signatures."""
    seal = '"seal","records":5,"reason":"client_closed"'
    path = forge(tmp_path / "f.jsonl", host, [MSG, MSG, MSG, seal], bad_sig_at=3)
    assert check([path], [pub(host)])[:4] == (0, "sealed", None, None)
    assert check([path], [pub(host)], all_signatures=True)[:4] == (1, "tampered", "f.jsonl", 3)
    forge(path, host, [MSG, MSG, MSG, seal], bad_sig_at=5)  # the last: caught either way, and named
    assert check([path], [pub(host)])[:4] == (1, "tampered", "f.jsonl", 5)
    forge(path, host, [MSG, MSG, MSG, seal])
    assert check([path], [pub(host)], all_signatures=True)[:4] == (0, "sealed", None, None)
    # In a real file, swapping a middle signature also breaks the next prev: the swapped record is named.
    real = sealed(tmp_path / "real", host)
    put(real, _set(4, _swap_sig)(lines(real)))
    assert check([real], [pub(host)], all_signatures=True)[:4] == (1, "tampered", "s.jsonl", 4)


# -- keys: rotation, another machine ------------------------------------------------------------------------


def test_key_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = relay_env(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    keys = HostKeys(store="file", file=Path(env["XDG_STATE_HOME"]) / "relay" / "keys" / "host-ed25519.pem")
    directory = Path(env["XDG_STATE_HOME"]) / "relay" / "transcripts"  # relay's default, where rotate writes
    old = keys.load()
    sealed(directory, old, "before")
    session(directory, old, "crashed", seal=False)._abandon()
    out = subprocess.run([*RELAY, "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    new = keys.load()
    assert public_bytes(new.public_key()) != public_bytes(old.public_key())
    assert [public_bytes(k) for k in keys.trusted()] == [public_bytes(new.public_key()),
                                                          public_bytes(old.public_key())]
    sealed(directory, new, "after")
    assert recover(directory, new) == ["crashed"]  # the recovery is signed by the new key
    assert [r["type"] for r in records(directory / "ledger.jsonl")] == [
        "open", "seal", "open", "rotate", "open", "seal", "recovery"]
    expect = [("after.jsonl", "sealed"), ("before.jsonl", "sealed"), ("crashed.jsonl", "recovered")]
    for anchor in ([old.public_key()], [new.public_key()], keys.trusted()):
        v = check([directory], anchor)
        assert v.exit_code == 0 and [(r.path.name, r.outcome) for r in v.relay] == expect
        assert check([directory / "before.jsonl"], anchor)[:2] == (0, "sealed")
    # Without the ledger the rotation is unknown: each key vouches only for its own sessions.
    bare = tmp_path / "bare"
    shutil.copytree(directory, bare, ignore=shutil.ignore_patterns("ledger.jsonl"))
    assert check([bare / "after.jsonl"], [old.public_key()])[:4] == (1, "tampered", "after.jsonl", 1)
    assert check([bare / "before.jsonl"], [new.public_key()])[:4] == (1, "tampered", "before.jsonl", 1)
    assert check([bare / "before.jsonl"], [old.public_key()])[:2] == (0, "sealed")


def test_verification_on_another_machine(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    here = tmp_path / "host"
    sealed(here, host, "a")
    session(here, host, "b", seal=False)._abandon()
    recover(here, host)
    pem = public_pem(host.public_key()).encode()
    there = tmp_path / "auditor"
    shutil.copytree(here, there / "transcripts")
    (there / "host.pem").write_bytes(pem)
    anchor = load_public_pem((there / "host.pem").read_bytes(), "host.pem")
    theirs, code = iv.verify_paths([there / "transcripts"], [iv.load_pem(there / "host.pem")])
    assert code == 0 and [r.outcome for r in theirs] == ["sealed", "recovered"]
    v = check([there / "transcripts"], [anchor])
    assert v.exit_code == 0 and [r.outcome for r in v.relay] == ["sealed", "recovered"]
    assert check([there / "transcripts"], [Ed25519PrivateKey.generate().public_key()])[:4] == (
        1, "tampered", "ledger.jsonl", 1)


# -- every single-byte change ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ed25519PrivateKey]:
    directory = tmp_path_factory.mktemp("small")
    key = Ed25519PrivateKey.generate()
    sealed(directory, key, "s", messages=2)
    return directory, key


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_is_caught(small: tuple[Path, Ed25519PrivateKey], tmp_path: Path,
                                          data: st.DataObject) -> None:
    """Any changed byte of a sealed session: tampered (1) when the ledger is there. The one byte that can
    change without touching a record is the final LF; the seal is then a torn line (a crash mid-write looks
    exactly like that), so the file alone is incomplete (3), never sealed: and the ledger, which recorded the
    seal, makes it tampered again (cut short at the seal's number)."""
    source, key = small
    original = (source / "s.jsonl").read_bytes()
    at = data.draw(st.integers(0, len(original) - 1), label="position")
    value = (original[at] + data.draw(st.integers(1, 255), label="delta")) % 256
    changed = original[:at] + bytes([value]) + original[at + 1:]
    with_ledger, alone = tmp_path / "with", tmp_path / "alone"
    for d in (with_ledger, alone):
        d.mkdir(exist_ok=True)
        (d / "s.jsonl").write_bytes(changed)
    shutil.copy(source / "ledger.jsonl", with_ledger / "ledger.jsonl")

    final_lf = at == len(original) - 1
    v = check([with_ledger / "s.jsonl"], [key.public_key()])
    assert (v.exit_code, v.outcome) == (1, "tampered")
    assert v.record == (4 if final_lf else v.record)
    ours = verify_file(alone / "s.jsonl", Trust([key.public_key()]))
    expected = 3 if final_lf else 1
    assert ours.exit_code == expected, (at, value, ours)
    assert iv.verify_file(alone / "s.jsonl", [public_bytes(key.public_key())]).exit_code == expected
    if final_lf:
        assert any("incomplete last line" in w for w in ours.warnings)


# -- the command line ---------------------------------------------------------------------------------------


def test_cli(tmp_path: Path, host: Ed25519PrivateKey) -> None:
    pem = tmp_path / "host.pem"
    pem.write_text(public_pem(host.public_key()))
    good, bad, running = tmp_path / "good", tmp_path / "bad", tmp_path / "running"
    sealed(good, host)
    path = sealed(bad, host)
    put(path, EDITS["deleted middle"][0](lines(path)))
    w = session(running, host, seal=False)
    env = relay_env(tmp_path)

    def run(*paths: Path) -> tuple[int, dict[str, Any], str]:
        # Relative paths: rich wraps stderr at 80 columns when it is not a terminal.
        out = subprocess.run([*RELAY, "verify", *(str(p.relative_to(tmp_path)) for p in paths), "--key", "host.pem",
                              "--json"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        return out.returncode, json.loads(out.stdout), out.stderr

    try:
        code, report, err = run(good)
        assert code == 0 and report["exit_code"] == 0
        assert report["results"] == [{"path": "good/s.jsonl", "session": "s", "outcome": "sealed",
                                      "records": LAST, "record": None, "reason": None, "warnings": []}]
        assert f"OK: good/s.jsonl: sealed, {LAST} records" in err

        code, report, err = run(bad)
        assert code == 1 and report["exit_code"] == 1
        [r] = report["results"]
        assert (r["outcome"], r["record"], r["session"]) == ("tampered", 4, "s")
        assert "FAIL: bad/s.jsonl: record 4: " in err

        code, report, err = run(running)
        assert code == 3 and report["results"][0]["outcome"] == "incomplete"
        assert "INCOMPLETE:" in err

        code, report, _ = run(running, good, bad)  # tampered is the worst, whatever the numbers
        assert code == 1 and [r["outcome"] for r in report["results"]] == ["incomplete", "sealed", "tampered"]
        assert run(running, good)[0] == 3
    finally:
        w._abandon()
