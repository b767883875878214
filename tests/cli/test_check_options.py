"""One-off runs without a config file: --set, --policy, --skip, --fail-on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Runner

# refused by require-probes alone (deny); require-network-policy warns
POD = (
    """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 10001}
  containers:
  - name: web
    image: nginx@sha256:"""
    + "5e" * 32
    + """
    resources: {requests: {cpu: 10m, memory: 10Mi}, limits: {memory: 10Mi}}
    readinessProbe: {tcpSocket: {port: 80}}
"""
)


@pytest.fixture
def pod(tmp_path: Path) -> str:
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    return str(path)


def failing(run: object) -> set[tuple[str, str]]:
    results = run.json()["results"]  # type: ignore[attr-defined]
    return {(r["policy"], r["action"]) for r in results if r["result"] == "fail"}


def test_set_changes_a_policy_parameter(podgate: Runner, pod: str) -> None:
    assert podgate("check", pod).code == 1
    run = podgate("check", "-o", "json", "--set", "require-probes.mode=any", pod)
    assert run.code == 0, run.out
    assert failing(run) == {("require-network-policy", "warn")}


def test_set_reads_the_value_as_yaml_and_changes_top_level_settings(
    podgate: Runner, pod: str
) -> None:
    run = podgate("check", "-o", "json", "--set", "enforcement=audit", pod)
    assert run.code == 0
    assert ("require-probes", "warn") in failing(run)
    listed = podgate(
        "policies", "-o", "json", "--set", "require-probes.require=[readiness, startup]",
        "--set", "default-resources.limits.memory=1Gi",
    ).json()  # fmt: skip
    rows = {row["id"]: row for row in listed["policies"]}
    assert rows["require-probes"]["params"]["require"] == ["readiness", "startup"]
    assert rows["default-resources"]["params"]["limits"]["memory"] == "1Gi"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("require-probes.mod=any", "require-probes.mod: Extra inputs are not permitted"),
        ("require-probes.mode=some", "policies.require-probes.mode: Input should be"),
        ("nope.x=1", "'nope' is no policy, mutation or setting"),
        ("require-probes", "write KEY=VALUE"),
        ("plugins=[x.py]", "plugins loads code: set it in --config"),
        ("require-probes.mode=[unclosed", "the value is not valid YAML"),
    ],
)
def test_a_bad_set_is_a_usage_error_naming_it(
    podgate: Runner, pod: str, option: str, message: str
) -> None:
    run = podgate("check", "--set", option, pod)
    assert run.code == 2
    assert message in run.err


def test_policy_runs_only_the_policies_named(podgate: Runner, pod: str) -> None:
    run = podgate("check", "-o", "json", "--policy", "require-network-policy", pod)
    assert {r["policy"] for r in run.json()["results"]} == {"require-network-policy"}
    assert run.code == 0
    args = ("--set", "require-probes.action=off", "--policy", "require-probes")
    off = podgate("check", "-o", "json", *args, pod)
    assert failing(off) == {("require-probes", "deny")}, "named, it runs with its default action"


def test_skip_switches_a_policy_off(podgate: Runner, pod: str) -> None:
    run = podgate("check", "-o", "json", "--skip", "require-probes", pod)
    assert run.code == 0
    assert "require-probes" not in {r["policy"] for r in run.json()["results"]}
    unknown = podgate("check", "--skip", "require-probs", pod)
    assert unknown.code == 2
    assert "--skip require-probs: no such policy" in unknown.err


@pytest.mark.parametrize(("fail_on", "code"), [("deny", 0), ("warn", 1), ("audit", 1)])
def test_fail_on_sets_the_threshold_of_exit_1(
    podgate: Runner, pod: str, fail_on: str, code: int
) -> None:
    # only require-network-policy fails, as a warning
    run = podgate("check", "--skip", "require-probes", "--fail-on", fail_on, pod)
    assert run.code == code


def test_fail_on_audit_counts_an_audit_action(podgate: Runner, pod: str) -> None:
    args = ("--policy", "require-probes", "--set", "require-probes.action=audit")
    assert podgate("check", *args, pod).code == 0
    assert podgate("check", *args, "--fail-on", "warn", pod).code == 0
    assert podgate("check", *args, "--fail-on", "audit", pod).code == 1
