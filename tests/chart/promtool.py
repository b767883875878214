"""Run promtool on the chart's PrometheusRule.

promtool is found through `PODGATE_PROMTOOL`, then the build cache
(`$PODGATE_CACHE/bin/promtool-*/promtool`, newest first; e2e/tools/promtool.sh
builds it there), then PATH. The tests skip only when none exists; CI builds
it (see .ci/run).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import Rendered, find_tool

Rules = dict[str, Any]


@functools.cache
def find_promtool() -> str | None:
    return find_tool("promtool", "PODGATE_PROMTOOL")


def promtool_or_skip() -> str:
    promtool = find_promtool()
    if promtool is None:
        pytest.skip(
            "promtool not found: build it with e2e/tools/promtool.sh or set PODGATE_PROMTOOL"
        )
    return promtool


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_or_skip(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def rule_file(rendered: Rendered) -> Rules:
    """The rendered PrometheusRule's groups, as a Prometheus rule file."""
    spec: Rules = rendered.get("PrometheusRule")["spec"]
    return {"groups": spec["groups"]}


def alerts(rules: Rules) -> list[dict[str, Any]]:
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def recordings(rules: Rules) -> list[dict[str, Any]]:
    return [r for g in rules["groups"] for r in g["rules"] if "record" in r]
