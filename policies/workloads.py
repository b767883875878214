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


def with_template_of(owner: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """`obj` with the pod spec of `owner`'s template: the object as the
    template podgate judged has it (a Pod, or a workload's own template).

    Evaluated like `obj`, its violations read the same (same containers,
    same fields), so the object's own can be told from the template's. Its
    labels and annotations are the template's too (a policy reading them
    must see what was judged), plus the labels controllers add to what they
    make (a StatefulSet's pod name, a ReplicaSet's hash), which are not its
    doing.
    """
    template, kind = pod_template(owner), workload_kind(obj)
    if template is None or kind is None:
        return None
    made = _replaced(obj, (*kind.template_path, "spec"), template.get("spec"))
    if kind.template_path:
        return made  # a workload: its own template's metadata is compared as it is
    judged = template.get("metadata")
    judged = judged if isinstance(judged, Mapping) else {}
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    labels = meta.get("labels")
    added = {
        k: v
        for k, v in (labels.items() if isinstance(labels, Mapping) else ())
        if k in CONTROLLER_LABELS
    }
    judged_labels = judged.get("labels")
    made["metadata"] = {
        **meta,
        "labels": {**(judged_labels if isinstance(judged_labels, Mapping) else {}), **added},
        "annotations": judged.get("annotations") or {},
    }
    return made


# The labels kube-controller-manager gives the Pods it makes, on top of their
# template's (and a ReplicaSet's own pod-template-hash, in its template).
CONTROLLER_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "controller-uid",
        "job-name",
        "batch.kubernetes.io/controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/job-completion-index",
    }
)


def _replaced(node: Mapping[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A copy of `node` with the value at `path` replaced; only the mappings on
    the path are copied."""
    head, *rest = path
    inner = node.get(head)
    if rest:
        value = _replaced(inner if isinstance(inner, Mapping) else {}, tuple(rest), value)
    return {**node, head: value}
