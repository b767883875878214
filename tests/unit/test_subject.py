"""The one subject rule (policies/subject.py): what is judged for a write, and how
strictly, from the request alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies import NetworkPolicyInfo, StaticContext, evaluate
from policies.config import ConfigFile, load_config, resolve
from policies.model import OFFLINE
from policies.plugins import builtin_registry
from policies.subject import Subject, subject_of

RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
TAGGED = {"name": "web", "image": "nginx:1.27"}  # fails every built-in policy but one


def deployment(*containers: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", **metadata},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [copy.deepcopy(c) for c in containers or (TAGGED,)]},
            },
        },
    }


def pod(*containers: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}, **metadata},
        "spec": {"containers": [copy.deepcopy(c) for c in containers or (TAGGED,)]},
    }


def owned_by(kind: str, name: str, api_version: str = "apps/v1") -> list[dict[str, Any]]:
    ref = {"apiVersion": api_version, "kind": kind, "name": name, "uid": "u", "controller": True}
    return [ref]


# A NetworkPolicy selects app=web: require-network-policy passes unless a test says otherwise.
SELECTED = StaticContext(
    (NetworkPolicyInfo("shop", "web", {"matchLabels": {"app": "web"}}, frozenset({"Ingress"})),)
)


def judged(
    obj: dict[str, Any], old: dict[str, Any] | None = None, user: str = "", **raw: Any
) -> Any:
    config = resolve(ConfigFile.model_validate(raw), builtin_registry()) if raw else load_config()
    return evaluate(subject_of(obj, config, old, user), SELECTED, config)


def test_an_update_that_leaves_the_pod_template_alone_is_not_judged() -> None:
    old = deployment()
    for change in ("replicas", "labels", "ownerReferences"):
        new = copy.deepcopy(old)
        if change == "replicas":
            new["spec"]["replicas"] = 5
        elif change == "labels":
            new["metadata"]["labels"] = {"team": "shop"}
        else:
            old["metadata"]["ownerReferences"] = owned_by("Deployment", "gone")  # orphaned
        decision = judged(new, old)
        assert decision.skipped_reason == "the pod template is unchanged", change
        assert (decision.results, decision.patch) == ((), ())


def test_an_update_of_an_object_being_deleted_is_not_judged() -> None:
    old = deployment()
    new = copy.deepcopy(old)
    new["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    new["spec"]["template"]["spec"]["containers"].append({**TAGGED, "name": "extra"})
    assert judged(new, old).skipped_reason == "the object is being deleted"


def test_a_pods_labels_are_part_of_what_runs() -> None:
    """A Pod is its own template: a label change is judged, against the Pod before."""
    old = pod()
    relabelled = pod(labels={"app": "web", "team": "shop"})
    decision = judged(relabelled, old)
    assert not decision.skipped_reason
    assert decision.allowed
    assert decision.warning_lines
    assert all("(as before this update)" in line for line in decision.warning_lines)


def test_an_update_keeps_its_old_denials_as_warnings_and_refuses_new_ones() -> None:
    old = deployment()
    restarted = copy.deepcopy(old)
    restarted["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "now"}
    decision = judged(restarted, old)
    assert decision.allowed
    assert decision.warning_lines
    assert all("(as before this update)" in line for line in decision.warning_lines)

    worse = copy.deepcopy(restarted)
    worse["spec"]["template"]["spec"]["containers"].append({**TAGGED, "name": "sidecar"})
    decision = judged(worse, old)
    assert not decision.allowed
    assert any('container "sidecar"' in line for line in decision.denial_lines)

    strict = judged(restarted, old, allow_existing_violations=False)
    assert not strict.allowed


@pytest.mark.parametrize("field", ["image", "command", "env"])
def test_new_software_in_a_container_is_judged_anew(field: str) -> None:
    old = deployment()
    new = copy.deepcopy(old)
    value: Any = {"image": "nginx:1.28", "command": ["sh"], "env": [{"name": "A", "value": "1"}]}
    new["spec"]["template"]["spec"]["containers"][0][field] = value[field]
    decision = judged(new, old)
    assert not decision.allowed
    assert not any("(as before this update)" in line for line in decision.denial_lines)


def test_what_a_controller_writes_for_its_workload_is_at_most_a_warning() -> None:
    made = pod(ownerReferences=owned_by("ReplicaSet", "web-7d9f"))
    decision = judged(made, user=RS_CONTROLLER)
    assert decision.allowed
    note = "(as in the template of ReplicaSet web-7d9f)"
    assert decision.warning_lines
    assert all(note in line for line in decision.warning_lines)
    assert decision.patch, "a controller's Pod is mutated like any Pod"

    # the same Pod from anyone else: the reference counts for nothing
    assert not judged(made, user="jane").allowed
    assert not judged(made).allowed
    # strictness switched off: the controller's Pod is judged in full too
    assert not judged(made, user=RS_CONTROLLER, allow_existing_violations=False).allowed


def test_only_a_workload_controller_counts() -> None:
    """A controller that is no workload kind podgate judges (a Knative Revision,
    a ConfigMap, a Volcano Job) wrote a template nobody judged."""
    for kind, version in [
        ("Revision", "serving.knative.dev/v1"),
        ("ConfigMap", "v1"),
        ("Job", "batch.volcano.sh/v1alpha1"),
    ]:
        made = pod(ownerReferences=owned_by(kind, "x", version))
        assert not judged(made, user=RS_CONTROLLER).allowed, kind


def test_controllers_are_configuration() -> None:
    made = pod(ownerReferences=owned_by("ReplicaSet", "web-7d9f"))
    managed = "system:serviceaccount:platform:replicasets"
    assert not judged(made, user=managed).allowed
    assert judged(made, user=managed, controllers=[managed]).allowed
    assert not judged(made, user=RS_CONTROLLER, controllers=[managed]).allowed


def test_a_policy_reading_the_cluster_judges_a_controllers_pod_in_full() -> None:
    """The template was judged in the cluster of then: a NetworkPolicy deleted
    since is today's violation."""
    made = pod(ownerReferences=owned_by("ReplicaSet", "web-7d9f"))
    config = load_config()
    cfg = resolve(
        config.raw.model_copy(update={"policies": {"require-network-policy": {"action": "deny"}}}),
        config.registry,
    )
    decision = evaluate(subject_of(made, cfg, user=RS_CONTROLLER), OFFLINE, cfg)
    assert decision.allowed  # offline: the cluster is unknown, the policy skips
    unselected = StaticContext()
    decision = evaluate(subject_of(made, cfg, user=RS_CONTROLLER), unselected, cfg)
    assert not decision.allowed
    assert all(line.startswith("require-network-policy:") for line in decision.denial_lines)


def test_a_workload_under_a_controller_is_judged_but_never_mutated() -> None:
    """Mutated, a Deployment's ReplicaSet would differ from the Deployment's
    template and the controller would make ReplicaSets without end."""
    replica_set = deployment(ownerReferences=owned_by("Deployment", "web"))
    replica_set["kind"] = "ReplicaSet"
    by_controller = judged(replica_set, user=RS_CONTROLLER)
    assert by_controller.allowed
    assert by_controller.patch == ()
    by_hand = judged(replica_set)
    assert not by_hand.allowed
    assert by_hand.patch == ()
    assert judged(deployment()).patch, "a workload of its own is mutated"


def test_a_plain_object_is_judged_as_a_manifest_is() -> None:
    obj = pod(ownerReferences=owned_by("ReplicaSet", "web-7d9f"))
    config = load_config()
    assert subject_of(obj, config) == Subject(obj)
    plain, explicit = evaluate(obj, SELECTED, config), evaluate(Subject(obj), SELECTED, config)
    assert not plain.allowed
    assert plain.denial_lines == explicit.denial_lines
