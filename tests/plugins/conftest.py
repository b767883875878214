"""Fixtures for the plugin tests: the CLI run in-process, and the plugin venv."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.venv import plugin_venv
from webhook.cli.main import main

__all__ = ["REPO", "Cli", "Run", "cli", "plugin_venv"]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`podgate ARGS...` in-process: what a user sees on stdout and stderr."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
