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
