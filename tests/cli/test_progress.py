"""Progress on a terminal's stderr, and nothing anywhere else."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from policies.config import load_config
from webhook.cli.check import check_documents
from webhook.cli.inputs import read_inputs
from webhook.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.2  # every look at the clock: 200 ms later
        return self.now


def test_shown_on_a_terminal_after_half_a_second_and_cleared() -> None:
    stream = Terminal()
    progress = Progress(stream, clock=Clock())
    progress(1, 10, "reading files")  # 0.2 s after the start: too soon
    assert stream.getvalue() == ""
    progress(5, 10, "reading files")
    progress(9_000, 10_000, "checking objects")
    assert stream.getvalue().endswith("\r\033[Kpodgate check: checking objects 9,000/10,000")
    progress.clear()
    assert stream.getvalue().endswith("\r\033[K")


def test_nothing_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, clock=Clock())
    for done in range(10):
        progress(done, 10, "checking objects")
    progress.clear()
    assert stream.getvalue() == ""


def test_reading_and_checking_report_their_progress(tmp_path: Path) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\nspec: {containers: [{name: a}]}\n"
    for index in range(3):
        (tmp_path / f"m{index}.yaml").write_text("---\n".join(pod % i for i in range(300)))
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, what: str) -> None:
        seen.append((done, total, what))

    inputs = read_inputs([str(tmp_path)], progress=progress)
    assert [s for s in seen if s[2] == "reading files"] == [
        (i, 3, "reading files") for i in range(3)
    ]

    check_documents(inputs.documents, load_config(), progress=progress)
    checking = [s for s in seen if s[2] == "checking objects"]
    assert checking == [(0, 900, "checking objects"), (256, 900, "checking objects"),
                        (512, 900, "checking objects"), (768, 900, "checking objects")]  # fmt: skip


def test_check_cli_prints_no_progress_into_a_pipe(tmp_path: Path) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\nspec: {containers: [{name: a}]}\n"
    (tmp_path / "p.yaml").write_text("---\n".join(pod % i for i in range(3000)))
    run = subprocess.run([sys.executable, "-m", "webhook.cli", "check", str(tmp_path)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert "\033[K" not in run.stderr
