"""Where the pod template lives for every workload kind.

A pod rule applies to Pods and to the template of every workload that creates
them, so that `kubectl apply` of a Deployment is answered at once instead of a
ReplicaSet failing quietly later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkloadKind:
    kind: str
    groups: frozenset[str]  # API groups that define this kind ("" is core)
    template_path: tuple[str, ...]  # path to the PodTemplateSpec; () for a Pod itself
    runs_to_completion: bool = False  # Jobs: containers exit, probes make no sense


_APPS = frozenset({"apps", "extensions"})

WORKLOAD_KINDS: dict[str, WorkloadKind] = {
    k.kind: k
    for k in (
        WorkloadKind("Pod", frozenset({""}), ()),
        WorkloadKind("PodTemplate", frozenset({""}), ("template",)),
        WorkloadKind("ReplicationController", frozenset({""}), ("spec", "template")),
        WorkloadKind("Deployment", _APPS, ("spec", "template")),
        WorkloadKind("StatefulSet", _APPS, ("spec", "template")),
        WorkloadKind("DaemonSet", _APPS, ("spec", "template")),
        WorkloadKind("ReplicaSet", _APPS, ("spec", "template")),
        WorkloadKind("Job", frozenset({"batch"}), ("spec", "template"), runs_to_completion=True),
        WorkloadKind(
            "CronJob",
            frozenset({"batch"}),
            ("spec", "jobTemplate", "spec", "template"),
            runs_to_completion=True,
        ),
    )
}

POD_KINDS = frozenset(WORKLOAD_KINDS)
JOB_OWNER_KINDS = frozenset({"Job", "CronJob"})


def api_group(api_version: str) -> str:
    """`apps/v1` -> `apps`; `v1` -> `` (the core group)."""
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def workload_kind(obj: Mapping[str, Any]) -> WorkloadKind | None:
    """The workload kind of an object, or None when it carries no pod template.

    The API group is checked so that a custom resource that happens to be
    called `Deployment` is not mistaken for one.
    """
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return None
    found = WORKLOAD_KINDS.get(kind)
    if found is None or api_group(api_version) not in found.groups:
        return None
    return found


# The versions the Kubernetes API has served each kind at, removed ones
# included: an old manifest is still judged on its pod template.
SERVED_VERSIONS: dict[str, frozenset[str]] = {
    "Pod": frozenset({"v1"}),
    "PodTemplate": frozenset({"v1"}),
    "ReplicationController": frozenset({"v1"}),
    "Deployment": frozenset({"apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"}),
    "StatefulSet": frozenset({"apps/v1", "apps/v1beta1", "apps/v1beta2"}),
    "DaemonSet": frozenset({"apps/v1", "apps/v1beta2", "extensions/v1beta1"}),
    "ReplicaSet": frozenset({"apps/v1", "apps/v1beta2", "extensions/v1beta1"}),
    "Job": frozenset({"batch/v1"}),
    "CronJob": frozenset({"batch/v1", "batch/v1beta1", "batch/v2alpha1"}),
}
# API groups only Kubernetes itself defines: a custom resource cannot live in them.
_KUBERNETES_GROUPS = frozenset({"", "apps", "batch", "extensions", "policy", "autoscaling"})


def is_kubernetes_group(group: str) -> bool:
    return group in _KUBERNETES_GROUPS or group == "k8s.io" or group.endswith(".k8s.io")


def unserved_kind(kind: str, api_version: str) -> str | None:
    """Why no Kubernetes API server accepts a workload kind at this apiVersion
    (`apiVersion: v1` on a Deployment), as kubectl says it; None when one
    does, or when the group is not Kubernetes' own (a custom resource that
    happens to be called Deployment is no Deployment)."""
    served = SERVED_VERSIONS.get(kind)
    if served is None or api_version in served or not is_kubernetes_group(api_group(api_version)):
        return None
    return (
        f'no matches for kind "{kind}" in version "{api_version}" '
        f"(Kubernetes serves {kind} as {current_version(kind)})"
    )


def current_version(kind: str) -> str:
    """The stable apiVersion of a workload kind: `apps/v1` for a Deployment."""
    return min(SERVED_VERSIONS[kind], key=lambda v: ("alpha" in v or "beta" in v, v))


def not_judged(obj: Mapping[str, Any]) -> str:
    """Why an object without a pod template podgate knows is not judged."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        return "object has no pod template"
    if kind in WORKLOAD_KINDS and isinstance(api_version, str):
        return (
            f"{kind} of {api_version} is a custom resource, not the Kubernetes {kind} "
            f"({current_version(kind)}): podgate does not know where its pods are"
        )
    return f"{kind} has no pod template"


def referred_kind(ref: Mapping[str, Any]) -> WorkloadKind | None:
    """The workload kind an ownerReference names, API group included (a Job
    of batch.volcano.sh is not a batch/v1 Job); None for any other kind."""
    return workload_kind({"apiVersion": ref.get("apiVersion"), "kind": ref.get("kind")})


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The PodTemplateSpec of a workload; None for a Pod or an object without one."""
    kind = workload_kind(obj)
    if kind is None or not kind.template_path:
        return None
    node: object = obj
    for key in kind.template_path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None
