"""Workloads that podgate did not admit as they are now: from before podgate,
from audit mode, exempted. They must keep running, scaling and changing, and
nobody may pass a violation off as theirs (docs/adr/0005-existing-workloads.md)."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import Any

from e2e.conftest import (
    E2E_CONFIG,
    IMAGE,
    Podgate,
    apply,
    container,
    deployment,
    eventually,
    kubectl,
    kubectl_json,
    kubectl_ok,
    new_namespace,
)

TAGGED = {"containers": [{"name": "web", "image": "nginx:1.27"}]}  # violates every policy


def _items(kind: str, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json("get", kind, "-n", namespace)["items"]
    return items


def _failed_creates(namespace: str) -> list[str]:
    events = kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate"
    )
    return [e["message"] for e in events["items"]]


@contextlib.contextmanager
def _in_audit_mode(installed: Podgate) -> Iterator[None]:
    """podgate in the dry-run audit mode, then enforcing again: what a cluster
    switched to enforcement has from before."""
    audit = copy.deepcopy(E2E_CONFIG)
    audit["enforcement"] = "audit"
    installed.reconfigure(audit)
    try:
        yield
    finally:
        installed.reconfigure(E2E_CONFIG)


def _pods_made(namespace: str, count: int) -> None:
    """The controllers made `count` Pods (no kubelet runs them here), none refused."""
    eventually(
        lambda: len(_items("pods", namespace)) == count or _failed_creates(namespace),
        timeout=60,
    )
    assert not _failed_creates(namespace), _failed_creates(namespace)
    assert len(_items("pods", namespace)) == count


def test_a_deployment_admitted_in_audit_mode_still_scales_after_enforce(
    installed: Podgate, namespace: str
) -> None:
    with _in_audit_mode(installed):
        assert apply(deployment("old", namespace, TAGGED, 1)).returncode == 0
        _pods_made(namespace, 1)
    kubectl_ok("scale", "deployment", "old", "-n", namespace, "--replicas=3")
    _pods_made(namespace, 3)
    # a Pod of its own making, under the ReplicaSet's name and uid, is refused
    (replica_set,) = _items("replicasets", namespace)
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": replica_set["metadata"]["name"],
        "uid": replica_set["metadata"]["uid"],
        "controller": True,
    }
    spec = copy.deepcopy(replica_set["spec"]["template"]["spec"])
    spec["containers"].append({"name": "extra", "image": "busybox:1.36"})
    forged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "forged", "namespace": namespace, "ownerReferences": [owner]},
        "spec": spec,
    }
    refused = apply(forged)
    assert refused.returncode != 0
    denials = [line for line in refused.stderr.splitlines() if line.startswith("- ")]
    assert denials, refused.stderr
    assert any('container "extra"' in line for line in denials), denials


def test_the_exempt_annotation_of_a_deployment_reaches_its_pods(namespace: str) -> None:
    legacy = deployment("legacy", namespace, TAGGED, 2)
    legacy["metadata"]["annotations"] = {"podgate.dev/exempt": "*"}
    proc = apply(legacy)
    assert proc.returncode == 0, proc.stderr
    _pods_made(namespace, 2)


def test_a_label_change_does_not_roll_out_a_deployment_from_before_podgate(
    installed: Podgate,
) -> None:
    name = new_namespace("prelabel", labels={"podgate.dev/ignore": "true"})
    try:
        # compliant, but without the defaults podgate's mutation would add
        api = deployment("api", name, {"containers": [container()]}, replicas=2)
        assert apply(api).returncode == 0
        eventually(lambda: _items("replicasets", name) or None)
        kubectl_ok("label", "namespace", name, "podgate.dev/ignore-")
        before = kubectl_json("get", "deployment", "api", "-n", name)["metadata"]["generation"]
        kubectl_ok("label", "deployment", "api", "-n", name, "team=shop")
        after = kubectl_json("get", "deployment", "api", "-n", name)["metadata"]["generation"]
        assert after == before, "a metadata-only change rewrote the pod template (a rollout)"
        assert len(_items("replicasets", name)) == 1
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def test_a_job_from_before_podgate_can_be_labelled_and_resumed(installed: Podgate) -> None:
    name = new_namespace("prejob", labels={"podgate.dev/ignore": "true"})
    try:
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": name},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "m", "image": IMAGE}],
                    }
                },
            },
        }
        assert apply(job).returncode == 0
        kubectl_ok("label", "namespace", name, "podgate.dev/ignore-")
        # a Job's template is immutable: a patched template would be refused
        label = kubectl("label", "job", "migrate", "-n", name, "team=shop")
        assert label.returncode == 0, label.stderr
        resume = kubectl("patch", "job", "migrate", "-n", name, "-p", '{"spec":{"suspend":false}}')
        assert resume.returncode == 0, resume.stderr
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def test_a_memory_limit_can_be_lowered(namespace: str) -> None:
    web = deployment("web", namespace, {"containers": [container()]}, replicas=1)
    web["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64Mi"}}
    assert apply(web).returncode == 0
    web["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "32Mi"}}
    lowered = apply(web)
    assert lowered.returncode == 0, lowered.stderr


ROOT_TAGGED = {
    "containers": [{"name": "web", "image": "nginx:1.27", "securityContext": {"runAsUser": 0}}]
}


def _audit_mode_replica_set(installed: Podgate, name: str, namespace: str) -> dict[str, Any]:
    """A violating bare ReplicaSet, admitted in audit mode (the feature's use case)."""
    with _in_audit_mode(installed):
        rs = deployment(name, namespace, ROOT_TAGGED, 0)
        rs["kind"] = "ReplicaSet"
        assert apply(rs).returncode == 0
    found: dict[str, Any] = kubectl_json("get", "replicaset", name, "-n", namespace)
    return found


def _forged_pod(name: str, namespace: str, refs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": refs},
        "spec": copy.deepcopy(ROOT_TAGGED),
    }


def test_a_deployment_claiming_a_controller_does_not_get_its_pods_past_enforce(
    installed: Podgate, namespace: str
) -> None:
    """A workload a user writes is judged as written, whatever controller its
    ownerReference names: only a configured controller writes for its workload."""
    sa = kubectl_json("get", "serviceaccount", "default", "-n", namespace)
    sneaky = deployment("sneaky", namespace, ROOT_TAGGED, 2)
    sneaky["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "name": "default",
            "uid": sa["metadata"]["uid"],
            "controller": True,
        }
    ]
    created = apply(sneaky)
    assert created.returncode != 0, created.stdout
    assert f"Deployment {namespace}/sneaky violates" in created.stderr


def test_a_pod_of_another_namespace_cannot_borrow_a_cached_template(
    installed: Podgate, namespace: str
) -> None:
    """A Pod of namespace B naming (any name) the uid of a ReplicaSet of
    namespace A, whose answer is cached, is not judged against A's template."""
    victim = _audit_mode_replica_set(installed, "legacy", namespace)
    uid = victim["metadata"]["uid"]
    other = new_namespace("borrower")
    try:
        sa = kubectl_json("get", "serviceaccount", "default", "-n", other)
        kubectl_ok("scale", "replicaset", "legacy", "-n", namespace, "--replicas=1")
        eventually(lambda: _items("pods", namespace), timeout=30)  # the entry is now cached
        forged = _forged_pod(
            "borrowed",
            other,
            [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "nope",
                 "uid": uid, "controller": True},
                # a live owner: the garbage collector drops the dangling one, keeps the Pod
                {"apiVersion": "v1", "kind": "ServiceAccount", "name": "default",
                 "uid": sa["metadata"]["uid"]},
            ],
        )  # fmt: skip
        proc = apply(forged)
        assert proc.returncode != 0, f"admitted: {proc.stdout} {proc.stderr}"
    finally:
        kubectl("delete", "namespace", other, "--wait=false")


def test_a_forged_reference_does_not_stop_another_namespace_scaling(
    installed: Podgate, namespace: str
) -> None:
    """A forged Pod naming a victim's uid must not cache 'no owner' for the
    victim: its ReplicaSet must still make Pods."""
    victim = _audit_mode_replica_set(installed, "legacy", namespace)
    uid = victim["metadata"]["uid"]
    other = new_namespace("poisoner")
    try:
        decoy = deployment("decoy", other, {"containers": [container()]}, 0)
        decoy["kind"] = "ReplicaSet"
        assert apply(decoy).returncode == 0
        forged = _forged_pod(
            "poison",
            other,
            [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "decoy",
              "uid": uid, "controller": True}],
        )  # fmt: skip
        assert apply(forged, "--dry-run=server").returncode != 0  # refused, as it should be
        kubectl_ok("scale", "replicaset", "legacy", "-n", namespace, "--replicas=1")
        eventually(lambda: _items("pods", namespace) or _failed_creates(namespace), timeout=30)
        assert not _failed_creates(namespace), _failed_creates(namespace)
    finally:
        kubectl("delete", "namespace", other, "--wait=false")


def test_require_network_policy_deny_still_refuses_a_controllers_pods(
    installed: Podgate, namespace: str
) -> None:
    """The template was admitted with a NetworkPolicy; deleted since, its new
    Pods are refused as a bare Pod is, not admitted 'as in the template'."""
    web = deployment("web", namespace, {"containers": [container()]}, 1)
    assert apply(web).returncode == 0
    eventually(lambda: _items("pods", namespace), timeout=30)
    kubectl_ok("delete", "networkpolicy", "allow-all", "-n", namespace)
    time.sleep(2)  # podgate's watch sees it
    kubectl_ok("scale", "deployment", "web", "-n", namespace, "--replicas=3")
    eventually(lambda: len(_items("pods", namespace)) == 3 or _failed_creates(namespace), 60)
    assert len(_items("pods", namespace)) == 1, "Pods admitted with no NetworkPolicy (deny)"


def test_an_orphaning_delete_of_a_deployment_from_audit_mode_finishes(
    installed: Podgate, namespace: str
) -> None:
    """The garbage collector removes the ReplicaSet's ownerReference; the
    ReplicaSet, judged alone for the first time, must not be refused for what
    its Deployment was admitted with, or the delete never ends."""
    with _in_audit_mode(installed):
        assert apply(deployment("old", namespace, TAGGED, 1)).returncode == 0
        eventually(lambda: _items("replicasets", namespace))
    kubectl_ok("delete", "deployment", "old", "-n", namespace, "--cascade=orphan", "--wait=false")
    gone = eventually(
        lambda: kubectl("get", "deployment", "old", "-n", namespace).returncode != 0, timeout=30
    )
    assert gone, installed.tail(5)
    (replica_set,) = _items("replicasets", namespace)
    assert not replica_set["metadata"].get("ownerReferences")


def test_a_deployment_from_audit_mode_rolls_out_and_back_after_enforce(
    installed: Podgate, namespace: str
) -> None:
    """A new template with the same software, and the rollback to the template
    it had: its old faults are warnings, and its controllers' objects pass."""
    with _in_audit_mode(installed):
        assert apply(deployment("old", namespace, TAGGED, 1)).returncode == 0
        _pods_made(namespace, 1)
    restart = kubectl("rollout", "restart", "deployment", "old", "-n", namespace)
    assert restart.returncode == 0, restart.stderr
    assert "(as before this update)" in restart.stderr
    eventually(lambda: len(_items("replicasets", namespace)) == 2 or None)
    _pods_made(namespace, 2)  # the new ReplicaSet's first Pod; none is ever ready here
    undo = kubectl("rollout", "undo", "deployment", "old", "-n", namespace)
    assert undo.returncode == 0, undo.stderr
    eventually(
        lambda: (
            kubectl_json("get", "deployment", "old", "-n", namespace)["spec"]["template"][
                "metadata"
            ]
            .get("annotations", {})
            .get("kubectl.kubernetes.io/restartedAt")
            is None
            or None
        )
    )
    time.sleep(3)  # the controllers act on the rollback
    assert not _failed_creates(namespace), _failed_creates(namespace)
