"""Whose template made a Pod, and whether podgate judged it.

A Pod that kube-controller-manager creates may carry violations its
workload was admitted with (before podgate, in audit mode, while a policy
only warned): refusing it would stop the workload scaling or replacing a
lost Pod, and fix nothing. These functions find the template podgate
judged, and who may claim it. The engine leaves any workload with a
controller to that controller, so a workload that names one was never
judged itself: only the chains below count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from policies.views import as_mapping, controller_reference
from policies.workloads import pod_template


class OwnerLookup(Protocol):
    """The workload an ownerReference names in a namespace (`fresh`: read now,
    not an answer kept from earlier)."""

    def __call__(
        self, namespace: str, ref: Mapping[str, Any], *, fresh: bool = False
    ) -> Mapping[str, Any] | None: ...


# kube-controller-manager acts with a service account per controller
# (--use-service-account-credentials, the kubeadm default) or as itself.
_CONTROLLER_ACCOUNT = "system:serviceaccount:kube-system:{}"
_CONTROLLER_MANAGER = "system:kube-controller-manager"

# Who creates the Pods of each workload kind.
_POD_MAKERS = {
    "ReplicaSet": "replicaset-controller",
    "StatefulSet": "statefulset-controller",
    "DaemonSet": "daemon-set-controller",
    "Job": "job-controller",
    "ReplicationController": "replication-controller",
}


# The only controllers whose workloads podgate judged through their own: the
# engine leaves a workload with a controller to that controller, so a
# ReplicaSet counts through its Deployment, a Job through its CronJob, and a
# workload under any other controller (a ConfigMap named as one) not at all.
_JUDGED_THROUGH = {"ReplicaSet": "Deployment", "Job": "CronJob"}


def judged_template(
    owners: OwnerLookup, namespace: str, made: Mapping[str, Any]
) -> tuple[Mapping[str, Any], str] | None:
    """The workload whose template made `made` (a Pod, or a workload its
    controller made) and that podgate judged (or that predates podgate),
    and its name; None when there is none.

    That is the owner when it has no controller of its own; for a
    Deployment's ReplicaSet (a CronJob's Job), the Deployment (CronJob).
    A workload skipped because it has a controller was never judged itself:
    anyone may create one naming a legacy Deployment, or edit one, so it
    passes nothing on unless its pod spec is its controller's, exactly.
    Blocking: API reads.
    """
    if pod_template(made) is not None:  # a workload: the hop to its controller too
        return _through(owners, namespace, made)
    ref = controller_reference(made)
    # read now: a ReplicaSet may be edited (unchecked, it has a controller)
    # between two of its Pods, and a copy kept from the first would still pass
    owner = owners(namespace, ref, fresh=True) if ref is not None else None
    if owner is None:
        return None
    if controller_reference(owner) is None:
        return owner, _named(owner)
    return _through(owners, namespace, owner)


def _through(
    owners: OwnerLookup, namespace: str, workload: Mapping[str, Any]
) -> tuple[Mapping[str, Any], str] | None:
    """`workload`'s controller, when podgate judged it (it has no controller
    itself, and is the kind that makes `workload`'s kind) and `workload`'s
    pod spec is the controller's."""
    above = controller_reference(workload)
    if above is None or above.get("kind") != _JUDGED_THROUGH.get(str(workload.get("kind"))):
        return None
    top = owners(namespace, above)
    if top is not None and not _same_spec(workload, top):
        top = owners(namespace, above, fresh=True)  # the Deployment changed since it was kept?
    if top is None or controller_reference(top) is not None or not _same_spec(workload, top):
        return None
    return top, _named(top)


def _same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two workloads' pod templates have the same spec (the labels a
    controller adds to its ReplicaSet's or Job's template aside)."""
    left, right = pod_template(a), pod_template(b)
    return left is not None and right is not None and left.get("spec") == right.get("spec")


def _named(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')} {as_mapping(obj.get('metadata')).get('name')}"


# Who lets a workload go: the garbage collector (an orphaning delete), or its
# controller (a ReplicaSet whose labels no longer match its Deployment).
RELEASERS = frozenset(
    _CONTROLLER_ACCOUNT.format(name)
    for name in ("generic-garbage-collector", "deployment-controller", "cronjob-controller")
) | {_CONTROLLER_MANAGER}


def made_by_its_controller(username: str, owner_kind: object) -> bool:
    """Whether a Pod CREATE comes from the controller of its owner's kind. A
    user copying a legacy ReplicaSet's ownerReference (uids are not secret)
    is not its controller, and gets no exception from it."""
    maker = _POD_MAKERS.get(owner_kind) if isinstance(owner_kind, str) else None
    if maker is None:
        return False
    return username in (_CONTROLLER_ACCOUNT.format(maker), _CONTROLLER_MANAGER)
