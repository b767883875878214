"""`helm test`, then `helm uninstall`: the webhooks go before the pods, and
nothing of podgate is left in the cluster."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from e2e.conftest import helm, kubectl, kubectl_ok
from e2e.node.release import NAMESPACE, RELEASE, NodeRelease

INSTANCE = f"app.kubernetes.io/instance={RELEASE}"


def test_helm_test_passes(release: NodeRelease) -> None:
    proc = helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "120s", timeout=180)
    assert proc.returncode == 0, proc.stderr + release.describe()
    assert "Phase:          Succeeded" in proc.stdout, proc.stdout


class Watcher(threading.Thread):
    """When (monotonic) the webhook configurations were last seen, and when the
    first webhook pod was seen going."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        connect: Any = config.new_client_from_config  # untyped in the kubernetes package
        api = connect(config_file=os.environ["KUBECONFIG"])
        self.admission = client.AdmissionregistrationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.stop = threading.Event()
        self.configs_last_seen: float | None = None
        self.pods_first_going: float | None = None

    def _configs_exist(self) -> bool:
        for read in (
            self.admission.read_validating_webhook_configuration,
            self.admission.read_mutating_webhook_configuration,
        ):
            try:
                read(RELEASE)
                return True
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return False

    def _pods_going(self) -> bool:
        selector = f"{INSTANCE},app.kubernetes.io/component=webhook"
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return len(pods) < 2 or any(p.metadata and p.metadata.deletion_timestamp for p in pods)

    def run(self) -> None:
        while not self.stop.is_set() and self.pods_first_going is None:
            now = time.monotonic()
            if self._configs_exist():
                self.configs_last_seen = now
            if self._pods_going():
                self.pods_first_going = now
            time.sleep(0.05)


def _left(kinds: str, *where: str) -> list[str]:
    return kubectl_ok("get", kinds, *where, "-o", "name", "--ignore-not-found").split()


def test_uninstall_removes_the_webhooks_first_and_leaves_nothing(release: NodeRelease) -> None:
    # Objects podgate made at run time, which the hook must remove too.
    assert _left("secret", f"{RELEASE}-tls", "-n", NAMESPACE)
    assert _left("lease", "podgate-audit", "-n", NAMESPACE)
    watcher = Watcher()
    watcher.start()
    proc = helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "180s", timeout=240)
    watcher.stop.set()
    watcher.join(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert watcher.configs_last_seen is not None, "the webhooks were never seen"
    assert watcher.pods_first_going is not None, "the webhook pods were never seen going"
    assert watcher.configs_last_seen < watcher.pods_first_going, (
        "a webhook pod went while a webhook configuration still pointed at it"
    )
    webhooks = "validatingwebhookconfigurations,mutatingwebhookconfigurations"
    assert _left(webhooks, "-l", INSTANCE) == []
    assert _left("clusterroles,clusterrolebindings", "-l", INSTANCE) == []
    namespaced = (
        "deployments,replicasets,pods,services,configmaps,secrets,serviceaccounts,roles,"
        "rolebindings,poddisruptionbudgets,jobs,leases,networkpolicies"
    )
    left = [
        name
        for name in _left(namespaced, "-n", NAMESPACE)
        # what Kubernetes itself puts in every namespace
        if name not in ("configmap/kube-root-ca.crt", "serviceaccount/default")
    ]
    assert left == [], left
    reports = kubectl("get", "policyreports", "-A", "-o", "name")
    if "doesn't have a resource type" not in reports.stderr:  # the kind was never installed
        assert reports.returncode == 0, reports.stderr
        assert reports.stdout.split() == [], reports.stdout
