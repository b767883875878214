"""Smoke test of the real control plane started by ``e2e/cluster.sh up``.

Run with::

    e2e/cluster.sh up && eval "$(e2e/cluster.sh env)"
    python -m pytest e2e/test_control_plane.py -v
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytestmark = pytest.mark.e2e

if not os.environ.get("KUBECONFIG"):
    pytest.skip(
        "KUBECONFIG is not set: start the control plane with `e2e/cluster.sh up` "
        'and `eval "$(e2e/cluster.sh env)"`',
        allow_module_level=True,
    )
if shutil.which("kubectl") is None:
    pytest.skip("kubectl is not on PATH (see `e2e/cluster.sh env`)", allow_module_level=True)

VERSIONS_FILE = Path(__file__).parent / "cluster" / "versions.env"
POLL_TIMEOUT = 60.0
T = TypeVar("T")


def pinned_kube_version() -> str:
    for line in VERSIONS_FILE.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "KUBE_VERSION":
            return value.strip()
    raise AssertionError(f"KUBE_VERSION not found in {VERSIONS_FILE}")


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def kubectl_json(*args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl(*args, "-o", "json"))
    return result


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = POLL_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def owned_by(obj: dict[str, Any], kind: str, name: str) -> bool:
    refs: list[dict[str, Any]] = obj["metadata"].get("ownerReferences", [])
    return any(ref["kind"] == kind and ref["name"] == name for ref in refs)


def create_namespace() -> str:
    """A fresh namespace that podgate's webhooks leave alone (podgate.dev/ignore),
    so this smoke test checks the control plane whether or not podgate is installed."""
    name = f"podgate-smoke-{uuid.uuid4().hex[:8]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"podgate.dev/ignore": "true"}},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    return name


@pytest.fixture
def smoke_namespace() -> Iterator[str]:
    name = create_namespace()
    yield name
    kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def test_server_reports_pinned_version() -> None:
    version = json.loads(kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == pinned_kube_version()


def test_deployment_gets_replicaset_and_pods(smoke_namespace: str) -> None:
    namespace = smoke_namespace
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "smoke", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "smoke"}},
            "template": {
                "metadata": {"labels": {"app": "smoke"}},
                # Never pulled: there is no kubelet, Pods stay Pending.
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/smoke:1"}]},
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment))

    def replicaset() -> str | None:
        items = kubectl_json("-n", namespace, "get", "replicasets")["items"]
        names = [rs["metadata"]["name"] for rs in items if owned_by(rs, "Deployment", "smoke")]
        return names[0] if names else None

    rs_name = wait_for("a ReplicaSet owned by the Deployment", replicaset)

    def pods() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = kubectl_json("-n", namespace, "get", "pods")["items"]
        owned = [pod for pod in items if owned_by(pod, "ReplicaSet", rs_name)]
        return owned if len(owned) == 2 else None

    for pod in wait_for("2 Pods owned by the ReplicaSet", pods):
        assert pod["status"]["phase"] == "Pending"


def test_namespace_gets_default_serviceaccount_and_deletes() -> None:
    name = create_namespace()
    try:

        def service_account() -> str | None:
            out = kubectl("-n", name, "get", "serviceaccount", "default", "-o", "name", check=False)
            return out.strip() or None

        assert wait_for("ServiceAccount default", service_account) == "serviceaccount/default"
    finally:
        kubectl("delete", "namespace", name, "--wait=false")

    def gone() -> bool | None:
        out = kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name")
        return True if not out.strip() else None

    wait_for(f"namespace {name} to be deleted", gone)
