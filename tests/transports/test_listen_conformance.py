"""The official conformance suite's server scenarios, run against `relay run --listen` in front of an `mcp`
SDK server, must pass at least every check they pass straight against that server."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.node import conformance_command
from tests.support.processes import RELAY, ROOT, free_port, relay_env, stop, wait_port

pytestmark = pytest.mark.node

SUITES = {
    "0.1.12": ((), "0.1.12"),
    "0.1.12-all": (("--suite", "all"), "0.1.12"),
    "0.1.16-all": (("--suite", "all"), "0.1.16"),
    "0.2.0-alpha.12": ((), "0.2.0-alpha.12"),
    "0.2.0-alpha.12-2025-11-25": (("--requirements", "2025-11-25"), "0.2.0-alpha.12"),
    "0.2.0-alpha.12-2026-07-28": (("--requirements", "2026-07-28"), "0.2.0-alpha.12"),
}
_LINE = re.compile(r"^[✓✗!]\s+(\S+): (\d+) passed, (\d+) failed", re.M)


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(straight, relayed): the conformance server, and relay --listen in front of it."""
    tmp = tmp_path_factory.mktemp("conformance")
    server_port, relay_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/servers/conformance_server.py"), "--port", str(server_port)],
                              stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"))
    straight = f"http://127.0.0.1:{server_port}/mcp"
    relay = subprocess.Popen([*RELAY, "run", "--listen", f"127.0.0.1:{relay_port}", "--url", straight],
                             env=relay_env(tmp), stdout=subprocess.DEVNULL, stderr=(tmp / "relay.log").open("wb"))
    try:
        wait_port(server_port)
        wait_port(relay_port)
        yield straight, f"http://127.0.0.1:{relay_port}/mcp"
    finally:
        stop(relay)
        stop(server)
    log = (tmp / "relay.log").read_text()
    assert "Traceback" not in log and "error" not in log.lower(), log


def run_suite(url: str, args: tuple[str, ...], version: str) -> dict[str, tuple[int, int]]:
    cmd = conformance_command(url, *args, version=version)
    out = subprocess.run(cmd.argv, env=cmd.environ(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    results = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in _LINE.finditer(out.stdout)}
    assert results, f"no scenario results:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return results


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_relay_passes_what_the_server_passes(urls: tuple[str, str], suite: str) -> None:
    args, version = SUITES[suite]
    straight_url, relayed_url = urls
    straight = run_suite(straight_url, args, version)
    relayed = run_suite(relayed_url, args, version)
    assert set(relayed) == set(straight)
    worse = {name: (straight[name], relayed[name]) for name in straight
             if relayed[name][0] < straight[name][0] or relayed[name][1] > straight[name][1]}
    assert not worse, f"scenarios that pass fewer checks through relay ((passed, failed) straight vs relayed): {worse}"
    # Not vacuous: the straight run really passes checks in every suite.
    assert sum(p for p, _ in straight.values()) >= 40
