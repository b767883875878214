"""evaluate(subject, context, config) -> Decision: the one path every entry point takes.

The webhook, `podgate check`, `podgate test` and the audit all call
`evaluate` on the subject the one rule gives them (subject.py). It never
raises for a bad object or a failing policy: a policy that raises, or runs
over its time budget, becomes an `error` result decided by that policy's
failure action, for that object only: nothing one evaluation does changes
another's (docs/adr/0006-failure-semantics.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from policies.budget import CpuClock, interrupted, over_budget
from policies.config import Config, PolicySettings
from policies.copies import copy_for_mutation
from policies.model import (
    EXEMPT_ANNOTATION,
    MODE_LABEL,
    Action,
    ClusterState,
    Context,
    Decision,
    Mode,
    Outcome,
    PolicyResult,
    ResourceRef,
    Skip,
)
from policies.patch import diff
from policies.raised import raised_at
from policies.registry import Metadata, Mutation, Policy
from policies.subject import Subject, as_before, as_made_by, renewed_containers, subject_of
from policies.views import LIST_KEYS, PodView, as_mapping
from policies.workloads import not_judged

INVALID_MANIFEST = "invalid-manifest"

_STRENGTH = {Action.OFF: 0, Action.AUDIT: 1, Action.WARN: 2, Action.DENY: 3}


def weakest(a: Action, b: Action) -> Action:
    return a if _STRENGTH[a] <= _STRENGTH[b] else b


def resource_ref(obj: Mapping[str, Any], default_namespace: str | None = None) -> ResourceRef:
    metadata = as_mapping(obj.get("metadata"))
    name = metadata.get("name") or metadata.get("generateName")
    namespace = metadata.get("namespace") or default_namespace
    return ResourceRef(
        api_version=str(obj.get("apiVersion", "")),
        kind=str(obj.get("kind", "")),
        namespace=str(namespace) if namespace else None,
        name=str(name) if name else None,
    )


_MODES = {str(m): m for m in Mode}


def namespace_mode(namespace: str, ctx: Context, config: Config) -> Mode:
    labels = ctx.namespace_labels(namespace)
    if not labels or MODE_LABEL not in labels:
        return config.enforcement
    # an unknown value (a typo) must not switch podgate off: the global mode holds
    return _MODES.get(labels[MODE_LABEL], config.enforcement)


def exempted_ids(namespace: str, annotations: Mapping[str, Any], config: Config) -> frozenset[str]:
    """The ids the object's `podgate.dev/exempt` annotation exempts it from,
    as far as the config lets it (off unless `exemptions.allow_annotation`)."""
    if not config.exemptions.allow_annotation:
        return frozenset()
    value = annotations.get(EXEMPT_ANNOTATION)
    if not isinstance(value, str):
        return frozenset()
    asked = frozenset(part.strip() for part in value.split(",") if part.strip())
    return config.annotation_exempts(namespace, asked)


def failure_reason(why: str, settings: PolicySettings) -> str:
    """An error result's reason: podgate could not evaluate the policy, why,
    and the setting that decided the object."""
    return f"podgate could not evaluate it: {why} (failure_action: {settings.failure_action})"


# A policy's exception message can carry any part of the object; the answer
# and the logs quote this much of it.
MAX_EXCEPTION_CHARS = 200


def raised(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > MAX_EXCEPTION_CHARS:
        text = text[: MAX_EXCEPTION_CHARS - 1] + "…"
    return f"the policy raised {type(exc).__name__}: {text}"


class _Run:
    """Everything fixed for one evaluation, shared by the per-policy steps.

    A slotted class rather than a frozen dataclass: one is built per
    evaluation, and a frozen dataclass's __init__ is slow."""

    __slots__ = ("clock", "config", "ctx", "exempt", "mode", "pod")

    def __init__(
        self, pod: PodView, ctx: Context, config: Config, mode: Mode, exempt: frozenset[str]
    ) -> None:
        self.pod, self.ctx, self.config = pod, ctx, config
        self.mode, self.exempt = mode, exempt
        self.clock = CpuClock()

    def applies(self, meta: Metadata) -> bool:
        return self.pod.kind in meta.kinds

    def adjust(self, action: Action) -> Action:
        """Audit mode turns every denial into a warning."""
        return Action.WARN if action is Action.DENY and self.mode is Mode.AUDIT else action


def _evaluate_policy(run: _Run, pol: Policy[Any], settings: PolicySettings) -> PolicyResult:
    """One policy on one object. Runs for every policy of every admission, so it
    is written flat: no closures, one clock read before and one after."""
    meta = pol.meta
    pid, action = meta.id, settings.action
    if run.exempt and (pid in run.exempt or "*" in run.exempt):
        reason = f"exempted by the {EXEMPT_ANNOTATION} annotation"
        return PolicyResult(pid, Outcome.SKIP, action, Action.OFF, (), reason)
    if meta.requires_cluster and run.ctx.cluster_state is ClusterState.OFFLINE:
        reason = "no cluster connection: cluster state unknown"
        return PolicyResult(pid, Outcome.SKIP, action, Action.OFF, (), reason)
    start = time.perf_counter()
    try:
        violations = pol.evaluate(run.pod, settings.params, run.ctx)
    except Skip as skip:
        elapsed = time.perf_counter() - start
        return PolicyResult(pid, Outcome.SKIP, action, Action.OFF, (), str(skip), elapsed)
    except (Exception, SystemExit) as exc:  # sys.exit() in a policy must not end podgate
        elapsed = time.perf_counter() - start
        reason = failure_reason(raised(exc), settings)
        failure = run.adjust(settings.failure_action)
        where = raised_at(exc, pol.func)
        return PolicyResult(pid, Outcome.ERROR, action, failure, (), reason, elapsed, where)
    except BaseException as exc:
        interrupted(pid, exc)
        raise
    end = time.perf_counter()
    elapsed = end - start
    spent = over_budget(run.clock, start, end, settings.budget_s)
    if spent is not None:
        why = (
            f"the policy used {spent * 1000:.0f} ms of CPU time on this object, "
            f"over its {settings.budget_s * 1000:.0f} ms budget"
        )
        failure = run.adjust(settings.failure_action)
        reason = failure_reason(why, settings)
        return PolicyResult(pid, Outcome.ERROR, action, failure, (), reason, elapsed)
    if not violations:
        return PolicyResult(pid, Outcome.PASS, action, Action.OFF, (), "", elapsed)
    effective = action
    if meta.requires_cluster and run.ctx.cluster_state is ClusterState.UNSYNCED:
        effective = weakest(effective, run.config.unsynced_action)
    return PolicyResult(
        pid, Outcome.FAIL, action, run.adjust(effective), tuple(violations), "", elapsed
    )


def _container_shape(spec: Mapping[str, Any]) -> tuple[int, ...]:
    """Identity and length of the container lists: a change means the cached
    container views are stale. Checked after every mutation, so kept cheap."""
    shape: list[int] = []
    for key in LIST_KEYS:
        value = spec.get(key)
        if isinstance(value, list):
            shape += (id(value), len(value))
        else:
            shape += (0, 0)
    return tuple(shape)


def _mutate(run: _Run, obj: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Apply every enabled mutation to a copy; a mutation that raises is left out.

    When one raises, its partial changes are discarded by starting again
    from the original without it: a half-applied mutation must not leak
    into the patch.
    """
    exempt = run.exempt
    mutations: list[tuple[Mutation[Any], Any]] = [
        (m, params)
        for m, params in run.config.active_mutations
        if run.applies(m.meta) and not (exempt and (m.meta.id in exempt or "*" in exempt))
    ]
    failed: dict[str, str] = {}
    while True:
        copy = copy_for_mutation(obj, run.pod.workload.template_path)
        template: Any = copy
        for key in run.pod.workload.template_path:
            template = template[key]
        # The original was validated (no problems), so its copy needs no second look.
        view = run.pod.with_object(copy, template["spec"])
        shape = _container_shape(view.spec)
        applied: list[str] = []
        for mut, params in mutations:
            if mut.meta.id in failed:
                continue
            try:
                mut.apply(view, params, run.ctx)
            except (Exception, SystemExit) as exc:
                failed[mut.meta.id] = f"{mut.meta.id} {raised(exc).removeprefix('the policy ')}"
                break
            except BaseException as exc:
                interrupted(mut.meta.id, exc)
                raise
            applied.append(mut.meta.id)
            if _container_shape(view.spec) != shape:  # it added or removed containers
                view.__dict__.pop("_views", None)
                shape = _container_shape(view.spec)
        else:
            return copy, applied, list(failed.values())


def evaluate(
    subject: Subject | Mapping[str, Any],
    ctx: Context,
    config: Config,
    *,
    validate: bool = True,
    mutate: bool = True,
    ephemeral_only: bool = False,
    default_namespace: str = "default",
) -> Decision:
    """Evaluate one subject: the validating results and, if asked, the mutation patch.

    A plain object is a manifest's: `subject_of(obj, config)` says how it is
    judged. `ephemeral_only` is for the `pods/ephemeralcontainers`
    subresource: only policies that concern ephemeral containers run, and
    nothing is mutated.
    """
    if not isinstance(subject, Subject):
        subject = subject_of(subject, config)
    obj = subject.obj
    try:
        if subject.skipped:
            ref = resource_ref(obj, default_namespace)
            return Decision(ref, config.enforcement, skipped_reason=subject.skipped)
        mutate = mutate and subject.mutable
        decision = _evaluate(obj, ctx, config, validate, mutate, ephemeral_only, default_namespace)
        if subject.made_by:
            decision = as_made_by(decision, subject.made_by, config)
        if subject.before is None or decision.allowed:
            return decision
        before = _evaluate(
            subject.before, ctx, config, True, False, ephemeral_only, default_namespace
        )
        renewed = renewed_containers(obj, subject.before, default_namespace)
        return decision._replace(results=as_before(decision.results, before.results, renewed))
    except RecursionError:
        # Python's stack ran out, not podgate's patience: no workload nests
        # anywhere near a thousand levels deep, so such an object is refused
        # like any manifest that cannot be read, never admitted unchecked.
        mode = config.enforcement
        refused = Action.WARN if mode is Mode.AUDIT else Action.DENY
        reason = "the object is nested too deeply to be checked (about a thousand levels)"
        invalid = PolicyResult(INVALID_MANIFEST, Outcome.ERROR, Action.DENY, refused, (), reason)
        return Decision(plain_ref(obj, default_namespace), mode, results=(invalid,))


def plain_ref(obj: Mapping[str, Any], default_namespace: str) -> ResourceRef:
    """`resource_ref` from its string fields only: safe on any object."""
    metadata = as_mapping(obj.get("metadata"))

    def text(value: object) -> str | None:
        return value if isinstance(value, str) else None

    return ResourceRef(
        text(obj.get("apiVersion")) or "",
        text(obj.get("kind")) or "",
        text(metadata.get("namespace")) or default_namespace,
        text(metadata.get("name")),
    )


def _evaluate(
    obj: Mapping[str, Any],
    ctx: Context,
    config: Config,
    validate: bool,
    mutate: bool,
    ephemeral_only: bool,
    default_namespace: str,
) -> Decision:
    ref = resource_ref(obj, default_namespace)
    pod = PodView.from_object(
        obj, default_namespace=default_namespace, exempt_images=config.exempt_images
    )
    if pod is None:
        return Decision(ref, config.enforcement, skipped_reason=not_judged(obj))
    if config.namespace_exempt(pod.namespace):
        return Decision(
            ref, config.enforcement, skipped_reason=f"namespace {pod.namespace} is exempt"
        )
    mode = namespace_mode(pod.namespace, ctx, config)
    if mode is Mode.OFF:
        return Decision(ref, mode, skipped_reason=f"{MODE_LABEL}=off on namespace {pod.namespace}")
    run = _Run(pod, ctx, config, mode, exempted_ids(pod.namespace, pod.annotations, config))
    if pod.problems:
        invalid = PolicyResult(
            INVALID_MANIFEST,
            Outcome.ERROR,
            Action.DENY,
            run.adjust(Action.DENY),
            reason="; ".join(pod.problems),
        )
        return Decision(ref, mode, results=(invalid,))
    results: list[PolicyResult] = []
    if validate:
        kind = pod.kind
        for _, pol, settings in config.active_policies:
            meta = pol.meta
            if kind not in meta.kinds or (ephemeral_only and not meta.concerns_ephemeral):
                continue
            results.append(_evaluate_policy(run, pol, settings))
    if not mutate or ephemeral_only:
        return Decision(ref, mode, results=tuple(results))
    mutated, applied, errors = _mutate(run, obj)
    return Decision(
        ref,
        mode,
        results=tuple(results),
        patch=tuple(diff(obj, mutated)),
        mutated=mutated,
        mutations_applied=tuple(applied),
        mutation_errors=tuple(errors),
    )
