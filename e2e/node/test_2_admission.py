"""The in-cluster podgate answering the API server through its Service, and what
the kubelet then does with what it let in."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.conftest import (
    ROOT,
    allow_all_network_policy,
    apply,
    deployment,
    eventually,
    kubectl,
    kubectl_json,
)
from e2e.node.release import (
    NodeRelease,
    create_namespace,
    delete_namespace,
    is_ready,
    names,
    wait_rolled_out,
)


@pytest.fixture
def namespace(release: NodeRelease) -> Iterator[str]:
    name = f"e2e-node-{uuid.uuid4().hex[:6]}"
    create_namespace(name)
    apply(allow_all_network_policy(name))
    yield name
    delete_namespace(name)


def http_server(image: str, **security: Any) -> dict[str, Any]:
    """A container that serves HTTP on 8080 and passes podgate's checks once
    its defaults are in: probes and a memory limit, no cpu request (injected)."""
    container: dict[str, Any] = {
        "name": "web",
        "image": image,
        "command": ["python3", "-m", "http.server", "8080", "--directory", "/tmp"],
        "ports": [{"containerPort": 8080}],
        "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
    }
    if security:
        container["securityContext"] = security
    return container


def one(name: str, namespace: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A Deployment of one replica."""
    return deployment(name, namespace, pod_spec, replicas=1)


def _podgate(*args: str, stdin: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "webhook.cli", *args], input=stdin,
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    return proc.stdout


def deny_lines_of_check(manifest: dict[str, Any]) -> list[str]:
    """The denials `podgate check` gives the manifest once its defaults are in
    (`--fix`), as the API server asks: the mutating webhook, then the validating."""
    mutated = _podgate("check", "--fix", "-", stdin=yaml.safe_dump(manifest))
    results = json.loads(_podgate("check", "-o", "json", "-", stdin=mutated))["results"]
    return [
        f"- {r['policy']}: {v['message']}; {v['fix']}"
        for r in results
        if r["action"] == "deny" and r["result"] == "fail"
        for v in r["violations"]
    ]


def test_a_bad_deployment_is_refused_through_the_service_line_by_line(
    release: NodeRelease, namespace: str
) -> None:
    bad = one("bad", namespace, {"containers": [{"name": "nginx", "image": "nginx:1.27"}]})
    proc = apply(bad)
    assert proc.returncode != 0
    expected = deny_lines_of_check(bad)
    assert len(expected) >= 4
    header = (
        f'admission webhook "validate.podgate.dev" denied the request: Deployment '
        f"{namespace}/bad violates {len(expected)} podgate policy rules:"
    )
    assert header in proc.stderr, proc.stderr
    for line in expected:
        assert line in proc.stderr, (line, proc.stderr)
    assert kubectl("get", "deployment", "bad", "-n", namespace).returncode != 0
    # The denial is recorded as an Event by the webhook pod that answered.
    webhook_pods = set(names(release.pods("webhook")))

    def event() -> dict[str, Any] | None:
        items = kubectl_json("get", "events", "-n", namespace)["items"]
        found = [e for e in items if e["reason"] == "PolicyViolation" and "/bad" in e["message"]]
        return found[0] if found else None

    recorded = eventually(event, timeout=30)
    assert recorded["reportingInstance"] in webhook_pods
    assert recorded["message"].startswith(f"Denied CREATE of Deployment {namespace}/bad")


def _running(namespace: str, app: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")[
        "items"
    ]
    return pods


def test_a_good_deployment_gets_its_defaults_and_its_pods_run(
    release: NodeRelease, namespace: str
) -> None:
    spec = {
        "securityContext": {"runAsUser": 10001},
        "containers": [http_server(release.images.pinned)],
    }
    proc = apply(one("good", namespace, spec))
    assert proc.returncode == 0, proc.stderr
    wait_rolled_out("deployment/good", namespace)
    (pod,) = _running(namespace, "good")
    assert pod["status"]["phase"] == "Running"
    assert is_ready(pod)
    (container,) = pod["spec"]["containers"]
    # podgate's defaults, injected into the template and so into the Pod
    assert container["resources"]["requests"]["cpu"] == "100m"
    assert container["securityContext"] == {"runAsNonRoot": True, "allowPrivilegeEscalation": False}
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_root_image_is_refused_at_apply_not_left_to_fail_on_the_node(
    release: NodeRelease, namespace: str
) -> None:
    root_image = release.images.root_image
    proc = apply(one("root", namespace, {"containers": [http_server(root_image)]}))
    assert proc.returncode != 0
    assert (
        'require-non-root: container "web": runAsNonRoot is not set; set '
        "securityContext.runAsNonRoot: true and runAsUser: 10001"
    ) in proc.stderr, proc.stderr
    # Following the message: the same image runs, as UID 10001.
    spec = {"containers": [http_server(root_image, runAsUser=10001)]}
    proc = apply(one("root", namespace, spec))
    assert proc.returncode == 0, proc.stderr
    wait_rolled_out("deployment/root", namespace)
    (pod,) = _running(namespace, "root")
    assert pod["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is True
    uid = kubectl("exec", "-n", namespace, pod["metadata"]["name"], "--", "python3", "-c",
                  "import os; print(os.getuid())").stdout.strip()  # fmt: skip
    assert uid == "10001"


def test_injecting_run_as_non_root_blindly_leaves_pods_that_never_start(
    release: NodeRelease, namespace: str
) -> None:
    """Why podgate does not: with `assume_images_run_as_non_root` the root image
    is admitted and the kubelet then refuses to start it."""
    root_spec = {"containers": [http_server(release.images.root_image)]}
    release.upgrade(_assume_non_root(True))
    try:
        # The pods see a new ConfigMap when the kubelet refreshes their volume.
        manifest = one("blind", namespace, root_spec)
        eventually(lambda: apply(manifest).returncode == 0, timeout=90)

        def refused() -> str | None:
            for pod in _running(namespace, "blind"):
                for status in pod.get("status", {}).get("containerStatuses", []):
                    waiting = status.get("state", {}).get("waiting", {})
                    if waiting.get("reason") == "CreateContainerConfigError":
                        return str(waiting.get("message"))
            return None

        message = eventually(refused, timeout=60)
        assert "runAsNonRoot and image will run as root" in message
    finally:
        release.upgrade(_assume_non_root(False))
        # No later test may meet the option still on.
        probe = one("probe", namespace, root_spec)
        eventually(
            lambda: "runAsNonRoot is not set" in apply(probe, "--dry-run=server").stderr,
            timeout=90,
        )


def _assume_non_root(on: bool) -> dict[str, Any]:
    mutation = {"assume_images_run_as_non_root": on}
    return {"config": {"mutations": {"default-security-context": mutation}}}
