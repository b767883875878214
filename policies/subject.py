"""What is judged for a write, and how strictly: one rule for every entry point.

The webhook, `podgate check`, `podgate test` and the audit all call
`subject_of` with what they know of a write: the object, the object an UPDATE
replaces, and who writes it. It reads nothing else, and never the cluster
(docs/adr/0005-existing-workloads.md says why each part is as it is). The
engine then softens a decision as the subject says (`as_made_by`, `as_before`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from policies.config import Config
from policies.model import Action, Decision, Outcome, PolicyResult
from policies.views import ContainerList, PodView, as_list, as_mapping
from policies.workloads import pod_template, referred_kind


class Subject(NamedTuple):
    """What the engine judges, and how strictly."""

    obj: Mapping[str, Any]
    # the object this UPDATE replaces: denials it had already are warnings
    before: Mapping[str, Any] | None = None
    # "ReplicaSet web-7d9f": its controller wrote it from a template podgate
    # judged; its denials are warnings, but for the policies that read the cluster
    made_by: str = ""
    # why it is not judged at all (its pod template is unchanged...)
    skipped: str = ""
    # False for a workload under a controller: its template is the controller's to write
    mutable: bool = True


_tuple_new = tuple.__new__


def controller_reference(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object's ownerReference with `controller: true` (Kubernetes allows one)."""
    for ref in as_list(as_mapping(obj.get("metadata")).get("ownerReferences")):
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def controlling_workload(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The controller ownerReference when it names a workload kind podgate judges
    (API group included: a Volcano `batch.volcano.sh` Job is no Job)."""
    ref = controller_reference(obj)
    return ref if ref is not None and referred_kind(ref) is not None else None


def _what_runs(obj: Mapping[str, Any]) -> object:
    """The part of an object that decides what runs: a workload's pod template;
    a Pod's spec, labels and annotations (a Pod is its own template)."""
    template = pod_template(obj)
    if template is not None:
        return template
    metadata = as_mapping(obj.get("metadata"))
    return metadata.get("labels"), metadata.get("annotations"), obj.get("spec")


def _being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool(as_mapping(obj.get("metadata")).get("deletionTimestamp"))


def subject_of(
    obj: Mapping[str, Any],
    config: Config,
    old: Mapping[str, Any] | None = None,
    user: str = "",
) -> Subject:
    """The one rule, from what the request (or the manifest) says of a write:
    the object, the object an UPDATE replaces, and who writes it ("" for a
    manifest or an object read from a cluster).

    An UPDATE that leaves what runs alone is not judged; one that changes it
    is compared with what it replaces; what a configured controller writes
    under a controller reference to a workload is judged at most as
    warnings, since that workload's template was judged. Anyone else's
    ownerReferences count for nothing: the object is judged as written.
    """
    if old is not None:
        if _being_deleted(obj):
            # finalizers are removed from an object being deleted: never block that
            return Subject(obj, skipped="the object is being deleted")
        if _what_runs(obj) == _what_runs(old):
            # scaling, relabelling, orphaning, suspending: nothing new runs
            return Subject(obj, skipped="the pod template is unchanged")
    lenient = config.raw.allow_existing_violations
    metadata = obj.get("metadata")
    if not (isinstance(metadata, dict) and metadata.get("ownerReferences")):
        # the common case, on every evaluation: nothing owns it. tuple.__new__
        # skips the NamedTuple's Python-level __new__ and its defaults
        return _tuple_new(Subject, (obj, old if lenient else None, "", "", True))
    controller = controller_reference(obj)
    mutable = controller is None or obj.get("kind") == "Pod"
    if not lenient:
        return Subject(obj, mutable=mutable)
    made_by = ""
    if controller is not None and referred_kind(controller) and user in config.controllers:
        made_by = f"{controller.get('kind')} {controller.get('name')}"
    return Subject(obj, before=old, made_by=made_by, mutable=mutable)


def as_made_by(decision: Decision, controller: str, config: Config) -> Decision:
    """Denials as warnings, marked `(as in the template of <controller>)`: what
    a controller writes is its workload's template, judged when it was written.
    A policy reading the cluster judges today's cluster, not that template's."""
    policies = config.registry.policies
    note = f"as in the template of {controller}"
    results = []
    for result in decision.results:
        policy = policies.get(result.policy)
        if result.effective_action is Action.DENY and not (
            policy is not None and policy.meta.requires_cluster
        ):
            result = _noted(result._replace(effective_action=Action.WARN), note)
        results.append(result)
    return decision._replace(results=tuple(results))


def _noted(result: PolicyResult, note: str) -> PolicyResult:
    if not result.violations:
        return result._replace(reason=f"{result.reason} ({note})")
    marked = tuple(v._replace(message=f"{v.message} ({note})") for v in result.violations)
    return result._replace(violations=marked)


# What a container runs, and what it runs with: a change of any is new software.
_SOFTWARE = (
    "image", "command", "args", "env", "envFrom", "volumeMounts", "workingDir", "lifecycle",
)  # fmt: skip


def renewed_containers(
    obj: Mapping[str, Any], old: Mapping[str, Any], default_namespace: str
) -> frozenset[str]:
    """The containers of `obj` whose software differs from `old`'s (new ones too)."""

    def software(of: Mapping[str, Any]) -> dict[str, tuple[object, ...]]:
        pod = PodView.from_object(of, default_namespace=default_namespace)
        if pod is None:
            return {}
        return {
            c.name: tuple(c.raw.get(k) for k in _SOFTWARE) for c in pod.containers(*ContainerList)
        }

    before = software(old)
    return frozenset(name for name, runs in software(obj).items() if before.get(name) != runs)


def as_before(
    results: tuple[PolicyResult, ...],
    before: tuple[PolicyResult, ...],
    renewed: frozenset[str],
) -> tuple[PolicyResult, ...]:
    """Denials whose every violation the object had before, as warnings.

    An update that leaves a policy's violations as they were (a rollout
    restart, the fix of another rule) makes nothing worse, so it is let
    through with the violations as warnings; one that adds a violation to a
    policy is refused. Violations are compared by their text, which names the
    container and the field; one of a container in `renewed` is new.
    """
    had = {r.policy: {str(v) for v in r.violations} for r in before if r.outcome is Outcome.FAIL}
    kept: list[PolicyResult] = []
    for result in results:
        known = had.get(result.policy)
        if (
            known
            and result.outcome is Outcome.FAIL
            and result.effective_action is Action.DENY
            and all(str(v) in known and v.container not in renewed for v in result.violations)
        ):
            result = _noted(result._replace(effective_action=Action.WARN), "as before this update")
        kept.append(result)
    return tuple(kept)
