"""`podgate --version`, `podgate version -o json` and `podgate completion SHELL`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.cli.conftest import Runner


def test_version_flag_and_command(podgate: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        podgate("--version")
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"podgate {version('podgate')}\n"
    info = podgate("version", "-o", "json").json()
    assert info["version"] == version("podgate")
    assert info["python"] == ".".join(str(n) for n in sys.version_info[:3])
    assert podgate("version").out.startswith(f"podgate {version('podgate')} (Python ")


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers after `words`, the last being the word being typed."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _podgate; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_options_choices_and_policy_ids(podgate: Runner) -> None:
    script = podgate("completion", "bash").out
    assert _complete(script, "podgate", "ch") == ["check"]
    assert _complete(script, "podgate", "check", "--fa") == ["--fail-on"]
    assert _complete(script, "podgate", "check", "-o", "s") == ["sarif"]
    assert _complete(script, "podgate", "check", "--skip", "require-n") == [
        "require-network-policy",
        "require-non-root",
    ]
    assert _complete(script, "podgate", "check", "--policy", "default-") == [], "no mutations"
    assert _complete(script, "podgate", "explain", "default-r") == ["default-resources"]
    assert "require-probes.include_sidecars=" in _complete(
        script, "podgate", "check", "--set", "require-probes."
    )
    assert _complete(script, "podgate", "completion", "z") == ["zsh"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_are_valid(podgate: Runner, shell: str) -> None:
    script = podgate("completion", shell).out
    assert "require-probes.mode=" in script
    program = shutil.which(shell)
    if program is None:
        pytest.skip(f"no {shell} here to parse the script")
    subprocess.run([program, "-n", "-c", script], check=True)
