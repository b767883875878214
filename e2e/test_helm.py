"""`helm install`, `upgrade` and `uninstall` of the whole chart into a real API server.

The release installed here renders everything (both Deployments, RBAC,
Service, PDB, certificates Secret management, ConfigMaps, webhook
configurations) and must be accepted by real API validation. Its webhooks
carry an objectSelector that matches nothing, so a release whose pods can
never run here (there is no kubelet) cannot refuse the other tests' requests.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml

from e2e.conftest import CHART, Podgate, helm, kubectl, kubectl_ok

NEVER = {"matchLabels": {"podgate-e2e/never": "true"}}
KINDS = ",".join(
    ("deployments", "services", "configmaps", "secrets", "serviceaccounts", "roles",
     "rolebindings", "poddisruptionbudgets")
)  # fmt: skip


def test_install_upgrade_uninstall_leaves_nothing(installed: Podgate, tmp_path: Path) -> None:
    release = f"full-{uuid.uuid4().hex[:5]}"
    namespace = f"e2e-{release}"
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "webhook": {"objectSelector": NEVER, "replicas": 2},
                "audit": {"enabled": True},
                "preDeleteHook": {"enabled": False},
            }
        )
    )
    # The session's podgate would judge this release's own Deployments (tagged
    # images, no NetworkPolicy): its namespace is excluded, as an operator would.
    kubectl_ok("create", "namespace", namespace)
    kubectl_ok("label", "namespace", namespace, "podgate.dev/ignore=true")
    install = helm("install", release, str(CHART), "-n", namespace, "-f", str(values))
    assert install.returncode == 0, install.stderr
    assert "STATUS: deployed" in install.stdout
    # NOTES: the try-it command targets a namespace podgate sees; no warnings
    # for an install in its own namespace with two replicas
    assert "kubectl -n default run podgate-check --image=nginx:latest" in install.stdout
    assert "Pod default/podgate-check violates 4 podgate policy rules:" in install.stdout
    assert 'is installed in namespace "default"' not in install.stdout
    assert "NOTE: one replica" not in install.stdout
    validating = json.loads(kubectl_ok("get", "validatingwebhookconfigurations", "-o", "json"))
    mine = [
        w
        for w in validating["items"]
        if w["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == release
    ]
    assert len(mine) == 1
    assert mine[0]["webhooks"][0]["objectSelector"] == NEVER
    deployments = kubectl_ok("get", "deployments", "-n", namespace, "-o", "name").split()
    assert len(deployments) == 2, deployments  # webhook and audit

    upgrade = helm(
        "upgrade",
        release,
        str(CHART),
        "-n",
        namespace,
        "-f",
        str(values),
        "--set",
        "webhook.validating.timeoutSeconds=7",
    )
    assert upgrade.returncode == 0, upgrade.stderr
    hook = json.loads(
        kubectl_ok(
            "get", "validatingwebhookconfiguration", mine[0]["metadata"]["name"], "-o", "json"
        )
    )
    assert hook["webhooks"][0]["timeoutSeconds"] == 7

    uninstall = helm("uninstall", release, "-n", namespace, "--wait")
    assert uninstall.returncode == 0, uninstall.stderr
    selector = f"app.kubernetes.io/instance={release}"
    for cluster_kind in (
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "clusterroles",
        "clusterrolebindings",
    ):
        left = kubectl_ok("get", cluster_kind, "-l", selector, "-o", "name")
        assert left.strip() == "", f"{cluster_kind} left behind: {left}"
    left = kubectl_ok("get", KINDS, "-n", namespace, "-l", selector, "-o", "name")
    assert left.strip() == "", f"left behind: {left}"
    kubectl("delete", "namespace", namespace, "--wait=false")


def test_typo_in_values_is_refused_by_the_schema(tmp_path: Path) -> None:
    proc = helm("template", "x", str(CHART), "--set", "webhook.replica=3")
    assert proc.returncode != 0
    assert "replica" in proc.stderr


def test_upgrade_with_a_config_podgate_refuses_leaves_the_release_untouched(
    tmp_path: Path,
) -> None:
    release = f"cfg-{uuid.uuid4().hex[:5]}"
    namespace = f"e2e-{release}"
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "webhook": {"objectSelector": NEVER, "replicas": 1},
                "audit": {"enabled": False},
                "preDeleteHook": {"enabled": False},
                "config": {"policies": {"require-probes": {"mode": "any"}}},
            }
        )
    )
    kubectl_ok("create", "namespace", namespace)
    kubectl_ok("label", "namespace", namespace, "podgate.dev/ignore=true")
    try:
        install = helm("install", release, str(CHART), "-n", namespace, "-f", str(values))
        assert install.returncode == 0, install.stderr
        configmap = f"{release}-podgate-config"
        before = kubectl_ok("get", "configmap", configmap, "-n", namespace, "-o", "json")
        # a parameter podgate refuses: the new pods would crash-loop on it
        upgrade = helm("upgrade", release, str(CHART), "-n", namespace, "-f", str(values),
                       "--set", "config.policies.require-probes.mode=most")  # fmt: skip
        assert upgrade.returncode != 0
        assert "/config/policies/require-probes/mode" in upgrade.stderr, upgrade.stderr
        history = json.loads(helm("history", release, "-n", namespace, "-o", "json").stdout)
        assert [(h["revision"], h["status"]) for h in history] == [(1, "deployed")]
        after = kubectl_ok("get", "configmap", configmap, "-n", namespace, "-o", "json")
        assert json.loads(after)["data"] == json.loads(before)["data"]
        assert "mode: any" in json.loads(after)["data"]["config.yaml"]
    finally:
        helm("uninstall", release, "-n", namespace, "--wait")
        kubectl("delete", "namespace", namespace, "--wait=false")
