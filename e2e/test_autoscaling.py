"""The chart's HorizontalPodAutoscaler against a real API server: accepted by its
validation, and `helm upgrade` neither resets the count the autoscaler chose
nor drops the field (which would leave the Deployment at one pod).

The release's webhooks select nothing (its pods never run: there is no
kubelet); `kubectl scale` plays the autoscaler, which the controller manager
runs but which has no metrics API here to act on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.conftest import CHART, Podgate, helm, kubectl, kubectl_json, kubectl_ok

NEVER = {"matchLabels": {"podgate-e2e/never": "true"}}


@pytest.fixture
def release(installed: Podgate, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    name = f"hpa-{uuid.uuid4().hex[:5]}"
    namespace = f"e2e-{name}"
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "webhook": {
                    "objectSelector": NEVER,
                    "replicas": 2,
                    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
                },
                "audit": {"enabled": False},
                "preDeleteHook": {"enabled": False},
            }
        )
    )
    kubectl_ok("create", "namespace", namespace)
    # the session's podgate would judge this release's own Deployment
    kubectl_ok("label", "namespace", namespace, "podgate.dev/ignore=true")
    yield name, namespace, values
    helm("uninstall", name, "-n", namespace, "--wait")
    kubectl("delete", "namespace", namespace, "--wait=false")


def upgrade(release: tuple[str, str, Path], *sets: str) -> None:
    name, namespace, values = release
    args = [f"--set={s}" for s in sets]
    proc = helm("upgrade", name, str(CHART), "-n", namespace, "-f", str(values), *args)
    assert proc.returncode == 0, proc.stderr


def _replicas(namespace: str, name: str) -> int:
    deployment = kubectl_json("-n", namespace, "get", "deployment", f"{name}-podgate")
    return int(deployment["spec"]["replicas"])


def test_upgrades_keep_the_autoscaler_s_count(release: tuple[str, str, Path]) -> None:
    name, namespace, values = release
    installed = helm("install", name, str(CHART), "-n", namespace, "-f", str(values))
    assert installed.returncode == 0, installed.stderr
    hpa = kubectl_json("-n", namespace, "get", "hpa", f"{name}-podgate")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{name}-podgate"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert _replicas(namespace, name) == 2  # a first install starts at `replicas`

    # the autoscaler chose 4
    kubectl_ok("-n", namespace, "scale", "deployment", f"{name}-podgate", "--replicas=4")
    upgrade(release, "webhook.validating.timeoutSeconds=7")
    assert _replicas(namespace, name) == 4, "helm upgrade reset the autoscaler's count"
    manifest = helm("get", "manifest", name, "-n", namespace).stdout
    deployment = next(
        d
        for d in yaml.safe_load_all(manifest)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == f"{name}-podgate"
    )
    assert deployment["spec"]["replicas"] == 4, "the release renders the live count"

    # a lower ceiling: the count follows, as the autoscaler would make it
    upgrade(release, "webhook.autoscaling.maxReplicas=3")
    assert _replicas(namespace, name) == 3
    assert (
        kubectl_json("-n", namespace, "get", "hpa", f"{name}-podgate")["spec"]["maxReplicas"] == 3
    )

    # turned off: the fixed `replicas` again, and no autoscaler left behind
    upgrade(release, "webhook.autoscaling.enabled=false")
    assert _replicas(namespace, name) == 2
    assert kubectl("-n", namespace, "get", "hpa", f"{name}-podgate").returncode != 0
