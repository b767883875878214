"""The formats for code review tools (-o sarif, -o github) and PolicyReports
(-o policyreport), and what a crashing plugin policy shows its author."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import Runner

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      containers:
      - name: web
        image: nginx:1.27
        resources: {requests: {cpu: 10m, memory: 10Mi}, limits: {memory: 10Mi}}
        livenessProbe: {tcpSocket: {port: 80}}
        readinessProbe: {tcpSocket: {port: 80}}
"""

CRASHING_PLUGIN = """import json

from policies import PodView, policy


def _team(labels):
    return labels["team"]


@policy("require-team", title="Pods name their team", category="ownership")
def require_team(pod: PodView):
    if pod.namespace == "shop":
        json.loads(pod.labels.get("team-json", "{"))
    if not _team(pod.labels):
        yield from ()
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(DEPLOYMENT)
    return path


def test_github_annotations_point_at_the_field(podgate: Runner, manifest: Path) -> None:
    run = podgate("check", "-o", "github", str(manifest))
    assert run.code == 1
    lines = run.out.splitlines()
    assert (
        f"::error file={manifest},line=13,col=9,title=podgate require-image-digest::"
        "Deployment shop/web: require-image-digest: container \"web\" image 'nginx:1.27' uses tag"
    ) in "\n".join(lines)
    warning = next(line for line in lines if line.startswith("::warning "))
    assert warning.startswith(f"::warning file={manifest},line=8,col=7,title=podgate require-netw")
    assert lines[-1].startswith("1 object, 1 evaluated, 1 failed; 5 results")


def test_github_annotations_escape_what_the_runner_reads(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "odd, name: 100%.yaml"
    path.write_text(DEPLOYMENT)
    run = podgate("check", "-o", "github", str(path))
    assert "file=" + str(tmp_path).replace(":", "%3A") + "/odd%2C name%3A 100%25.yaml," in run.out


def test_policy_report_lists_every_result_per_namespace(podgate: Runner, manifest: Path) -> None:
    run = podgate("check", "-o", "policyreport", str(manifest))
    assert run.code == 1
    (report,) = list(yaml.safe_load_all(run.out))
    assert (report["apiVersion"], report["kind"]) == ("wgpolicyk8s.io/v1alpha2", "PolicyReport")
    assert report["metadata"] == {"name": "podgate-check", "namespace": "shop"}
    assert report["summary"] == {"fail": 1, "warn": 1, "error": 0, "skip": 0, "pass": 3}
    first = report["results"][0]
    assert (first["policy"], first["result"], first["severity"]) == (
        "require-image-digest", "fail", "medium"
    )  # fmt: skip
    assert first["resources"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"}
    ]
    assert first["properties"] == {"file": str(manifest), "line": "1"}


def test_a_crashing_plugin_makes_sarif_unsuccessful_and_v_says_where(
    podgate: Runner, manifest: Path, tmp_path: Path
) -> None:
    plugin = tmp_path / "team.py"
    plugin.write_text(CRASHING_PLUGIN)
    config = tmp_path / "podgate.yaml"
    config.write_text(f"plugins: [{plugin}]\n")
    sarif = json.loads(podgate("check", "-c", str(config), "-o", "sarif", str(manifest)).out)
    (invocation,) = sarif["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["descriptor"] == {"id": "require-team"}
    text = notification["message"]["text"]
    assert "policy raised JSONDecodeError" in text
    # the plugin's own line, then where the library raised
    assert f"{plugin.name}:13 in require_team (raised at " in text
    assert "decoder.py:" in text
    other = manifest.with_name("other.yaml")
    other.write_text(DEPLOYMENT.replace("namespace: shop", "namespace: web"))
    verbose = podgate("check", "-c", str(config), "-v", str(other))
    (where,) = [line.strip() for line in verbose.out.splitlines() if line.strip().startswith("at ")]
    assert where.endswith(f"{plugin.name}:7 in _team"), "a helper of the plugin's: its line"
    assert " at " not in podgate("check", "-c", str(config), str(manifest)).out
    clean = json.loads(podgate("check", "-o", "sarif", str(manifest)).out)
    assert clean["runs"][0]["invocations"][0]["executionSuccessful"] is True
