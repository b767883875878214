"""require-labels: every workload says which team owns it.

The labels are required on the pod template (a Pod's own labels), because that
is what every object down the line carries: a Deployment's ReplicaSets and
Pods, a CronJob's Jobs and Pods get their labels from it. Requiring them only
on the Deployment's own metadata would admit the Deployment and then refuse
its Pods, quietly, in the ReplicaSet controller. `on_workload: true` also
requires them on the workload's own metadata, for `kubectl get deploy -l team=...`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from pydantic import field_validator

from policies import Field, Params, PodView, Violation, format_path, policy

# A label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


class RequireLabels(Params):
    labels: list[str] = Field(
        default=["team", "owner"],
        min_length=1,
        description="Label keys that must be set, each with a non-empty value.",
    )
    on_workload: bool = Field(
        default=False,
        description="Also require them on the workload's own metadata (the Deployment's, "
        "and a CronJob's job template), not only on the pod template.",
    )

    @field_validator("labels")
    @classmethod
    def _valid_keys(cls, labels: list[str]) -> list[str]:
        for key in labels:
            if not _LABEL_KEY.match(key):
                raise ValueError(f"{key!r} is not a valid label key")
        return labels


def _at(node: object, *keys: str) -> object:
    """The value at keys, or None where the manifest has a gap or a non-mapping."""
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _missing(labels: object, required: list[str]) -> list[str]:
    present = labels if isinstance(labels, Mapping) else {}
    # An empty value names nobody: it counts as missing.
    return [key for key in required if not str(present.get(key) or "").strip()]


def _violation(where: str, field: str, missing: list[str]) -> Violation:
    names = ", ".join(repr(m) for m in missing)
    return Violation(
        f"{where} has no {names} label" + ("s" if len(missing) > 1 else ""),
        field=field,
        fix=f"set {names} under {field}",
    )


@policy(
    "require-labels",
    title="Workloads carry team/owner labels",
    category="ownership",
    severity="low",
    params=RequireLabels,
)
def require_labels(pod: PodView, params: RequireLabels) -> Iterator[Violation]:
    """The pod template (a Pod's own metadata) must carry every label of
    `labels` with a non-empty value; with `on_workload`, the workload's own
    metadata too."""
    # spec_path ends in the pod spec; its parent holds the pod's metadata.
    template = pod.spec_path[:-1]
    missing = _missing(pod.labels, params.labels)
    if missing:
        where = "the pod" if pod.kind == "Pod" else "the pod template"
        yield _violation(where, format_path((*template, "metadata", "labels")), missing)
    if not params.on_workload or pod.kind == "Pod":
        return
    missing = _missing(_at(pod.obj, "metadata", "labels"), params.labels)
    if missing:
        yield _violation(f"the {pod.kind}", "metadata.labels", missing)
    if pod.kind == "CronJob":
        # A CronJob's Jobs take their labels from the job template, not the CronJob.
        job_labels = _at(pod.obj, "spec", "jobTemplate", "metadata", "labels")
        missing = _missing(job_labels, params.labels)
        if missing:
            yield _violation("the job template", "spec.jobTemplate.metadata.labels", missing)
