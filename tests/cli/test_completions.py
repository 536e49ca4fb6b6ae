"""completions/ must match the CLI: each file is exactly what `relay completions SHELL` prints now."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from relay.cli.completions import generate
from tests.support.processes import ROOT

FILES = {"bash": "relay.bash", "zsh": "_relay", "fish": "relay.fish"}


@pytest.mark.parametrize("shell", sorted(FILES))
def test_completion_files_match_the_cli(shell: str) -> None:
    on_disk = (ROOT / "completions" / FILES[shell]).read_text()
    assert on_disk == generate(shell), f"completions/{FILES[shell]} is stale: run `relay completions {shell}`"


def test_every_command_and_option_is_offered() -> None:
    text = generate("bash")
    for word in ("run", "call", "demo", "config", "check", "--listen", "--url", "--arg", "--json", "--transport"):
        assert word in text


def _complete(words: list[str]) -> list[str]:
    script = (ROOT / "completions" / FILES["bash"]).as_posix()
    line = " ".join(f"'{w}'" for w in words)
    out = subprocess.run(
        ["bash", "-c", f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _relay; '
                       'printf "%s\\n" "${COMPREPLY[@]}"'],
        capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_bash_completes_subcommands_and_options() -> None:
    assert _complete(["relay", "con"]) == ["config"]
    assert _complete(["relay", "config", ""]) == ["check", "path", "--help"]
    assert set(_complete(["relay", "run", "--li"])) == {"--listen", "--listen-token-env"}


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_parse_their_script(shell: str, tmp_path: Path) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed here (.ci/run installs it)")
    result = subprocess.run([exe, "-n", str(ROOT / "completions" / FILES[shell])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
