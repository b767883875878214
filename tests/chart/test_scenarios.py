"""Every chart/ci scenario lints strictly and renders to well-formed objects."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import CHART, CI_VALUES, SCENARIOS, Rendered, lint, render, scenario, template

CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}


def test_every_required_scenario_exists() -> None:
    names = {p.name.removesuffix("-values.yaml") for p in CI_VALUES}
    assert names >= {
        "default",
        "cert-manager",
        "provided-certs",
        "out-of-cluster-url",
        "audit-mode",
        "single-replica",
        "everything-optional-enabled",
        "plugins-configmap",
    }


@pytest.mark.parametrize("values", SCENARIOS)
def test_lint_strict(values: Path) -> None:
    result = lint([values])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("values", SCENARIOS)
def test_renders_well_formed_objects(values: Path) -> None:
    rendered = render([values])
    assert rendered.objects
    for obj in rendered.objects:
        assert obj.get("apiVersion"), obj
        assert obj.get("kind"), obj
        meta = obj["metadata"]
        assert 0 < len(meta["name"]) <= 63, meta
        assert meta["labels"]["app.kubernetes.io/instance"] == "rel"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"{obj['kind']} is cluster-scoped"
        elif not (obj["kind"] == "ConfigMap" and meta["name"].endswith("-dashboard")):
            assert meta["namespace"] == rendered.namespace, f"{obj['kind']}/{meta['name']}"
    keys = Counter(
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered.objects
    )
    assert not [k for k, n in keys.items() if n > 1], "duplicate objects"


@pytest.mark.parametrize("values", SCENARIOS)
def test_workload_selectors_match_their_pods(values: Path) -> None:
    rendered = render([values])
    for kind in ("Deployment",):
        for obj in rendered.of_kind(kind):
            selector = obj["spec"]["selector"]["matchLabels"]
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), obj["metadata"]["name"]
    for service in rendered.of_kind("Service"):
        selected = [
            d
            for d in rendered.of_kind("Deployment")
            if service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = {
            p["name"]
            for c in selected[0]["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_kube_version_floor_is_enforced() -> None:
    too_old = template(kube_version="1.27.9")
    assert too_old.returncode != 0
    assert "kubeVersion" in too_old.stderr
    assert template(kube_version="1.28.0").returncode == 0


def test_release_namespace_is_used_everywhere() -> None:
    rendered = render(namespace="security")
    assert {o["metadata"].get("namespace") for o in rendered.objects} <= {"security", None}


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"].startswith(">=1.28")


def test_default_is_the_default_scenario() -> None:
    assert render().objects == render([scenario("default")]).objects


def _kinds(rendered: Rendered) -> set[str]:
    return {o["kind"] for o in rendered.objects}


def test_optional_objects_only_when_enabled() -> None:
    default = _kinds(render())
    assert not default & {"ServiceMonitor", "NetworkPolicy", "Certificate", "Issuer"}
    full = render([scenario("everything-optional-enabled")])
    assert {"ServiceMonitor", "NetworkPolicy"} <= _kinds(full)
    assert full.has("ConfigMap", "rel-podgate-dashboard")
