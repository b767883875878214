"""podgate's chart, rendered, passes `podgate check` with podgate's own defaults.

What podgate asks of every workload it asks of its own: resources, probes on
what runs for long, non-root, an image pinned by digest (`image.digest`), and
with `networkPolicy.enabled` a NetworkPolicy for every pod it starts.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.chart.helm import template

DIGEST = "sha256:" + "5e" * 32


def _check(*sets: str) -> tuple[int, dict[str, object]]:
    rendered = template(sets=[f"image.digest={DIGEST}", *sets])
    assert rendered.returncode == 0, rendered.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "-o", "json", "-"],
        input=rendered.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report: dict[str, object] = json.loads(proc.stdout)
    return proc.returncode, report


def _failures(report: dict[str, object]) -> list[str]:
    results = report["results"]
    assert isinstance(results, list)
    return [
        f"{r['resource']['kind']}/{r['resource']['name']}: {r['action']} {r['policy']}: "
        f"{r['message']}"
        for r in results
        if r["result"] != "pass" and r["result"] != "skip"
    ]


def test_the_chart_with_a_digest_is_never_refused_by_podgate() -> None:
    code, report = _check()
    failures = _failures(report)
    assert code == 0, failures
    # What is left are warnings that a NetworkPolicy is missing, which the
    # chart renders only when asked (networkPolicy.enabled).
    assert failures, "the default values render no NetworkPolicy"
    assert all(": warn require-network-policy: " in f for f in failures), failures


def test_the_chart_with_its_network_policies_passes_every_policy() -> None:
    code, report = _check("networkPolicy.enabled=true")
    assert (code, _failures(report)) == (0, [])
    results = report["results"]
    assert isinstance(results, list)
    evaluated = {r["resource"]["kind"] for r in results if r["result"] == "pass"}
    assert {"Deployment", "Pod", "Job"} <= evaluated, evaluated
