"""examples/plugin-package, pip-installed into a fresh venv, is picked up by
`podgate policies`, `podgate check` and `podgate test` with no change to podgate
or its config: the `podgate.policies` entry point is all it takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.plugins import load_registry
from tests.plugins.venv import ENTRY_POINT_ORIGIN, PACKAGE, PACKAGE_POLICIES, PluginVenv

pytestmark = pytest.mark.slow  # pip builds the package: several seconds, once per session

PRIVILEGED = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: kube-ops}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      hostPID: true
      containers:
        - name: agent
          image: registry.example.com/ops/agent:2.0.0
          securityContext: {privileged: true}
"""


def test_the_package_is_not_in_the_test_runs_own_environment() -> None:
    # Otherwise the venv would prove nothing: the entry point must come from the install.
    assert not set(PACKAGE_POLICIES) & load_registry().ids()


def test_podgate_policies_lists_the_package_with_its_origin(
    plugin_venv: PluginVenv, tmp_path: Path
) -> None:
    text = plugin_venv.run("policies", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    line = next(row for row in text.stdout.splitlines() if row.startswith("disallow-privileged "))
    assert line.split()[:4] == ["disallow-privileged", "policy", "deny", "critical"]
    assert line.endswith(f"Containers are not privileged  [{ENTRY_POINT_ORIGIN}]")
    assert "require-resources" in text.stdout  # the built-ins are still there

    listed = plugin_venv.run("policies", "-o", "json", cwd=tmp_path)
    rows = {row["id"]: row for row in json.loads(listed.stdout)["policies"]}
    for pid in PACKAGE_POLICIES:
        assert rows[pid]["origin"] == ENTRY_POINT_ORIGIN
    assert rows["disallow-privileged"]["params"] == {"allow_images": []}


def test_podgate_check_enforces_the_package(plugin_venv: PluginVenv, tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(PRIVILEGED, encoding="utf-8")
    proc = plugin_venv.run("check", "agent.yaml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        '  FAIL  deny  disallow-privileged: container "agent" is privileged; '
        "remove privileged: true and add only the capabilities it needs"
    ) in proc.stdout.splitlines()
    assert (
        "  FAIL  deny  disallow-host-namespaces: the pod sets hostPID: true; "
        "remove spec.template.spec.hostPID"
    ) in proc.stdout.splitlines()


def test_the_config_parameterises_the_package(plugin_venv: PluginVenv, tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(PRIVILEGED, encoding="utf-8")
    (tmp_path / "podgate.yaml").write_text(
        "policies:\n"
        "  disallow-privileged: {allow_images: ['registry.example.com/ops/*']}\n"
        "  disallow-host-namespaces: {action: warn}\n",
        encoding="utf-8",
    )
    proc = plugin_venv.run("check", "-c", "podgate.yaml", "-o", "json", "agent.yaml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the built-ins still deny it
    results = {r["policy"]: r for r in json.loads(proc.stdout)["results"]}
    assert results["disallow-privileged"]["result"] == "pass"
    assert (
        results["disallow-host-namespaces"]["result"],
        results["disallow-host-namespaces"]["action"],
    ) == ("fail", "warn")

    (tmp_path / "podgate.yaml").write_text(
        "policies:\n  disallow-privileged: {allow_images: registry.example.com/ops/*}\n",
        encoding="utf-8",
    )
    proc = plugin_venv.run("check", "-c", "podgate.yaml", "agent.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "podgate check: podgate.yaml: policies.disallow-privileged.allow_images: "
        "Input should be a valid list\n"
    )


def test_podgate_test_runs_the_packages_suite_and_fixtures(
    plugin_venv: PluginVenv, tmp_path: Path
) -> None:
    proc = plugin_venv.run("test", str(PACKAGE / "tests"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 5 suite cases, and the 2 fixtures of tests/disallow-host-namespaces/: a
    # fixture folder is recognised by the id of an installed policy.
    assert proc.stdout.splitlines()[-1] == "7 cases: 7 passed, 0 failed"
    assert f"PASS  fail-host-ipc  ({PACKAGE / 'tests' / 'disallow-host-namespaces'})" in (
        proc.stdout.splitlines()
    )
