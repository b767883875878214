"""What a user sees at `kubectl apply`, through a real API server."""

from __future__ import annotations

import copy
import time
from typing import Any

from e2e.conftest import (
    E2E_CONFIG,
    Podgate,
    apply,
    bad_pod,
    container,
    deployment,
    eventually,
    good_pod,
    kubectl,
    kubectl_json,
    kubectl_ok,
    new_namespace,
    policy_events,
)


def test_bad_pod_is_refused_with_every_violation(namespace: str) -> None:
    proc = apply(bad_pod("bad", namespace))
    assert proc.returncode != 0
    error = proc.stderr
    assert 'admission webhook "validate.podgate.dev" denied the request' in error, error
    # The mutating webhook ran first: requests and a memory limit were filled
    # in, and runAsNonRoot is never set on UID 0.
    assert "require-resources" not in error
    for line in (
        'require-non-root: container "web": runAsNonRoot is not set',
        'require-probes: container "web" has no livenessProbe',
        'require-probes: container "web" has no readinessProbe',
        'require-non-root: container "web" runs as root (UID 0)',
        "require-image-digest: container \"web\" image 'nginx:1.27' uses tag '1.27'",
    ):
        assert line in error, f"missing {line!r} in:\n{error}"
    assert kubectl("get", "pod", "bad", "-n", namespace).returncode != 0, "nothing stored"


def test_warn_mode_admits_and_kubectl_prints_warnings(installed: Podgate, namespace: str) -> None:
    warn_all = copy.deepcopy(E2E_CONFIG)
    for policy in (
        "require-resources",
        "require-probes",
        "require-non-root",
        "require-image-digest",
        "require-network-policy",
    ):
        warn_all["policies"][policy] = {"action": "warn"}
    installed.reconfigure(warn_all)
    try:
        proc = apply(bad_pod("warned", namespace))
    finally:
        installed.reconfigure(E2E_CONFIG)
    assert proc.returncode == 0, proc.stderr
    assert "pod/warned created" in proc.stdout
    assert 'Warning: require-probes: container "web" has no livenessProbe' in proc.stderr
    assert "Warning: require-image-digest:" in proc.stderr
    kubectl_ok("get", "pod", "warned", "-n", namespace)


def test_deployment_refused_at_the_deployment(namespace: str) -> None:
    bad = deployment("api", namespace, {"containers": [{"name": "api", "image": "api:latest"}]})
    proc = apply(bad)
    assert proc.returncode != 0
    assert f"Deployment {namespace}/api violates" in proc.stderr
    assert 'require-probes: container "api" has no livenessProbe' in proc.stderr
    assert kubectl("get", "deployment", "api", "-n", namespace).returncode != 0


def test_good_deployment_pods_carry_the_injected_defaults(namespace: str) -> None:
    proc = apply(deployment("web", namespace, {"containers": [container()]}))
    assert proc.returncode == 0, proc.stderr
    stored = kubectl_json("get", "deployment", "web", "-n", namespace)
    template = stored["spec"]["template"]["spec"]
    assert template["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    def pods() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = kubectl_json("get", "pods", "-n", namespace, "-l", "app=web")[
            "items"
        ]
        return items if len(items) == 2 else None

    created = eventually(pods, timeout=60)  # the controller-manager's ReplicaSet made them
    for pod in created:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        c = pod["spec"]["containers"][0]
        assert c["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
        assert c["securityContext"] == {
            "runAsUser": 10001,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
        }
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_deployment_from_before_podgate_scales_with_one_replicaset(installed: Podgate) -> None:
    """A Deployment made while podgate did not see its namespace has no
    injected defaults and breaks policies. Scaling it makes the controller
    update its ReplicaSet through podgate: that ReplicaSet must be neither
    mutated (it would stop matching the template, and the controller would
    create ReplicaSets without end) nor refused (the Deployment could not scale)."""
    name = new_namespace("legacy", labels={"podgate.dev/ignore": "true"})
    try:
        legacy = deployment(
            "legacy", name, {"containers": [{"name": "web", "image": "nginx:1.27"}]}, replicas=2
        )
        assert apply(legacy).returncode == 0
        eventually(lambda: kubectl_json("get", "replicasets", "-n", name)["items"] or None)
        kubectl_ok("label", "namespace", name, "podgate.dev/ignore-")  # podgate sees it now
        scaled = kubectl("scale", "deployment", "legacy", "-n", name, "--replicas=1")
        assert scaled.returncode == 0, scaled.stderr

        def scaled_down() -> bool | None:
            sets = kubectl_json("get", "replicasets", "-n", name)["items"]
            return (len(sets) == 1 and sets[0]["spec"]["replicas"] == 1) or None

        eventually(scaled_down, timeout=30)
        time.sleep(3)  # a loop would have made new ReplicaSets by now
        assert len(kubectl_json("get", "replicasets", "-n", name)["items"]) == 1
        # the webhooks' matchCondition kept the controller's update (same template) from podgate
        seen = [line for line in installed.log_path.read_text().splitlines() if name in line]
        assert not [line for line in seen if '"kind":"ReplicaSet"' in line], seen
        # a change that leaves the pod template alone is not judged at all
        relabel = kubectl("label", "deployment", "legacy", "-n", name, "team=shop")
        assert relabel.returncode == 0, relabel.stderr
        assert "Warning" not in relabel.stderr
        # a new template with the same software is let through, old faults as warnings
        restart = kubectl("rollout", "restart", "deployment", "legacy", "-n", name)
        assert restart.returncode == 0, restart.stderr
        assert "(as before this update)" in restart.stderr
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def test_mutation_is_stored_and_idempotent(namespace: str) -> None:
    pod = good_pod("mutated", namespace)
    first = apply(pod)
    assert first.returncode == 0, first.stderr
    stored = kubectl_json("get", "pod", "mutated", "-n", namespace)
    c = stored["spec"]["containers"][0]
    assert c["resources"] == {
        "limits": {"memory": "64Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
    assert c["securityContext"] == {
        "runAsUser": 10001,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
    }
    again = apply(pod)
    assert again.returncode == 0, again.stderr
    assert "pod/mutated unchanged" in again.stdout
    after = kubectl_json("get", "pod", "mutated", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


def test_server_dry_run_same_answer_no_event_nothing_stored(namespace: str) -> None:
    proc = apply(bad_pod("dry", namespace), "--dry-run=server")
    assert proc.returncode != 0
    assert "require-probes" in proc.stderr
    ok = apply(good_pod("dry-good", namespace), "--dry-run=server")
    assert ok.returncode == 0, ok.stderr
    assert "(server dry run)" in ok.stdout
    time.sleep(2)  # events are sent off the request path; give one the chance to appear
    assert policy_events(namespace) == []
    assert kubectl("get", "pod", "dry", "-n", namespace).returncode != 0
    assert kubectl("get", "pod", "dry-good", "-n", namespace).returncode != 0


def test_network_policy_presence_follows_the_watch_cache(installed: Podgate) -> None:
    ns = new_namespace("netpol", network_policy=False)
    try:
        pod = good_pod("web", ns, tier="front")
        refused = apply(pod)
        assert refused.returncode != 0
        assert "require-network-policy: no NetworkPolicy with policyType Ingress" in refused.stderr
        kubectl_ok(
            "apply",
            "-f",
            "-",
            stdin=f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: front, namespace: {ns}}}
spec:
  podSelector:
    matchExpressions: [{{key: tier, operator: In, values: [front]}}]
  policyTypes: [Ingress]
""",
        )
        started = time.monotonic()
        eventually(lambda: apply(pod).returncode == 0, timeout=10)
        assert time.monotonic() - started < 10
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")


def test_namespace_label_audit_mode_refuses_nothing_and_records(installed: Podgate) -> None:
    ns = new_namespace("audit", labels={"podgate.dev/mode": "audit"})
    try:
        before = installed.metric(
            "podgate_admission_requests_total", webhook="validate", kind="Pod", decision="warned"
        )
        proc = apply(bad_pod("audited", ns))
        assert proc.returncode == 0, proc.stderr
        assert "Warning: [audit mode, would be denied] require-probes:" in proc.stderr
        events = eventually(lambda: policy_events(ns))
        assert any("require-probes" in e["message"] for e in events)
        after = installed.metric(
            "podgate_admission_requests_total", webhook="validate", kind="Pod", decision="warned"
        )
        assert after == before + 1
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")


def test_global_dry_run_audit_mode(installed: Podgate, namespace: str) -> None:
    installed.reconfigure({**E2E_CONFIG, "enforcement": "audit"})
    try:
        proc = apply(bad_pod("global-audit", namespace))
    finally:
        installed.reconfigure(E2E_CONFIG)
    assert proc.returncode == 0, proc.stderr
    assert "Warning: [audit mode, would be denied] require-non-root:" in proc.stderr


def test_events_name_the_policies_and_repeats_are_aggregated(namespace: str) -> None:
    for _ in range(3):
        assert apply(bad_pod("repeat", namespace)).returncode != 0
    events = eventually(lambda: policy_events(namespace))
    assert len(events) == 1, [e["message"] for e in events]
    event = events[0]
    assert event["involvedObject"]["kind"] == "Namespace"
    assert event["type"] == "Warning"
    for policy in ("require-probes", "require-non-root", "require-image-digest"):
        assert policy in event["message"]
    assert "require-resources" not in event["message"], "the mutation filled what it required"
    # The repeats are counted on the one Event, written back at the flush interval.
    eventually(lambda: policy_events(namespace)[0].get("count", 1) >= 3, timeout=15)
    listing = kubectl_ok("get", "events", "-n", namespace)
    assert "PolicyViolation" in listing


def test_excluded_namespaces_are_never_evaluated(installed: Podgate) -> None:
    before = installed.metric("podgate_admission_requests_total")
    for ns in ("kube-system", "podgate-system"):
        proc = apply(bad_pod("excluded", ns))
        assert proc.returncode == 0, f"{ns}: {proc.stderr}"
        assert "Warning" not in proc.stderr
        kubectl("delete", "pod", "excluded", "-n", ns, "--wait=false")
    ignored = new_namespace("ignored", labels={"podgate.dev/ignore": "true"})
    try:
        assert apply(bad_pod("excluded", ignored)).returncode == 0
    finally:
        kubectl("delete", "namespace", ignored, "--wait=false")
    assert installed.metric("podgate_admission_requests_total") == before, "podgate was called"


def test_kubectl_debug_on_a_controlled_pod_still_goes_through_podgate(namespace: str) -> None:
    """A Pod under a controller podgate does not judge (a ConfigMap) is judged
    as written, and so are the ephemeral containers `kubectl debug` adds to it."""
    kubectl_ok("create", "configmap", "owner", "-n", namespace)
    owner = kubectl_json("get", "configmap", "owner", "-n", namespace)
    pod = good_pod("controlled", namespace)
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
         "uid": owner["metadata"]["uid"], "controller": True}
    ]  # fmt: skip
    created = apply(pod)
    assert created.returncode == 0, created.stderr
    debug = kubectl("debug", "pod/controlled", "-n", namespace, "--image=busybox:1.36")
    assert debug.returncode != 0
    assert 'admission webhook "validate.podgate.dev" denied the request' in debug.stderr
    assert 'ephemeral container "debugger' in debug.stderr
