"""The decision for an object the engine could not finish evaluating.

When the caller's deadline stops the engine, or the request took too long to
arrive, or the engine itself failed, each policy that would have judged the
object decides it by its own failure action, as a policy that raised does:
a deny policy refuses (unless configured otherwise), a warn policy admits
with a warning. Only what is cheap to read whatever the object's size is
consulted (its kind and metadata): the object that did not finish in time
must not get a second chance to use it up.
"""

from __future__ import annotations

from policies.config import Config
from policies.engine import exempted_ids, failure_reason, namespace_mode, plain_ref
from policies.model import (
    MODE_LABEL,
    Action,
    ClusterState,
    Context,
    Decision,
    Mode,
    Outcome,
    PolicyResult,
)
from policies.subject import Subject, as_made_by
from policies.views import as_mapping
from policies.workloads import workload_kind


def unevaluated(
    subject: Subject,
    ctx: Context,
    config: Config,
    why: str,
    *,
    running: str | None = None,
    ephemeral_only: bool = False,
    default_namespace: str = "default",
) -> Decision:
    """Every policy that applies to the object, as an error decided by its
    failure action; `running` names the policy that was stopped, if any."""
    obj = subject.obj
    ref = plain_ref(obj, default_namespace)
    if subject.skipped:
        return Decision(ref, config.enforcement, skipped_reason=subject.skipped)
    workload = workload_kind(obj)
    if workload is None:
        return Decision(ref, config.enforcement, skipped_reason="the object has no pod template")
    metadata = as_mapping(obj.get("metadata"))
    namespace = ref.namespace or default_namespace
    if config.namespace_exempt(namespace):
        return Decision(ref, config.enforcement, skipped_reason=f"namespace {namespace} is exempt")
    mode = namespace_mode(namespace, ctx, config)
    if mode is Mode.OFF:
        return Decision(ref, mode, skipped_reason=f"{MODE_LABEL}=off on namespace {namespace}")
    exempt = exempted_ids(namespace, as_mapping(metadata.get("annotations")), config)
    results: list[PolicyResult] = []
    for pid, pol, settings in config.active_policies:
        meta = pol.meta
        if workload.kind not in meta.kinds or (ephemeral_only and not meta.concerns_ephemeral):
            continue
        if pid in exempt or "*" in exempt:
            continue
        if meta.requires_cluster and ctx.cluster_state is ClusterState.OFFLINE:
            continue
        detail = f"{why}; {running} was running" if running else why
        failure = settings.failure_action
        if failure is Action.DENY and mode is Mode.AUDIT:
            failure = Action.WARN
        reason = failure_reason(detail, settings)
        results.append(PolicyResult(pid, Outcome.ERROR, settings.action, failure, (), reason))
    decision = Decision(ref, mode, results=tuple(results))
    if subject.made_by:
        decision = as_made_by(decision, subject.made_by, config)
    return decision
