"""What every answer leaves behind: metrics, one JSON log line and, for a
refusal or warning that is not a dry run, Events (sent off the request path)."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from policies.model import Action, Decision, Outcome
from webhook.server.admission import AdmissionRequest, AdmissionResponse
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder, events_for
from webhook.telemetry.logs import ADMISSION_LOGGER, log_line
from webhook.telemetry.tracing import AdmissionSpan

log = logging.getLogger(ADMISSION_LOGGER)


class Answer(NamedTuple):  # not a frozen dataclass: cheaper to make
    response: AdmissionResponse
    decision: str  # the metric label: allowed, warned, denied, patched, skipped, error
    result: Decision | None = None
    note: str = ""


def record(
    webhook: str,
    req: AdmissionRequest,
    answer: Answer,
    took: float,
    events: EventRecorder | None,
    span: AdmissionSpan | None = None,
) -> None:
    """Count, log and (given `events`) report one answer; given a span, trace it."""
    dry_run = bool(req.dry_run)
    decision = answer.result
    failed: list[str] = []
    errors: list[str] = []
    with metrics.pending.lock:
        metrics.requests(
            webhook,
            metrics.kind_label(req.kind.kind),
            metrics.operation_label(req.operation),
            answer.decision,
            "true" if dry_run else "false",
        ).inc()
        metrics.duration(webhook).observe(took)
        if decision is not None:
            metrics.record_policy_results(decision.results)
    for r in decision.results if decision is not None else ():
        if r.outcome is Outcome.PASS or r.outcome is Outcome.SKIP:
            continue  # the common case: nothing more to note
        if r.outcome is Outcome.ERROR:
            metrics.POLICY_ERRORS.labels(r.policy).inc()
            errors.append(f"{r.policy}: {r.reason}")
        if r.effective_action is not Action.OFF:
            failed.append(f"{r.policy}:{r.effective_action}")
    if decision is not None and events is not None and not dry_run and decision.recorded:
        obj = req.object if isinstance(req.object, dict) else None
        user = req.user_info.username
        events.record(events_for(decision, operation=req.operation, user=user, obj=obj))
    ref = decision.resource if decision is not None else None
    if span is not None:
        span.record(
            kind=req.kind.kind,
            namespace=(ref.namespace if ref else None) or req.namespace,
            uid=req.uid,
            operation=req.operation,
            dry_run=dry_run,
            decision=answer.decision,
            results=decision.results if decision is not None else (),
            note=answer.note,
        )
    level = logging.WARNING if errors or answer.decision == "error" else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "uid": req.uid,
        "webhook": webhook,
        "kind": req.kind.kind,
        "namespace": (ref.namespace if ref else None) or req.namespace,
        "name": (ref.name if ref else None) or req.name,
        "user": req.user_info.username,
        "operation": req.operation,
        "dry_run": dry_run,
        "decision": answer.decision,
        "failed": failed,
        "duration_ms": round(took * 1000, 3),
    }
    if req.sub_resource:
        fields["subresource"] = req.sub_resource
    if answer.response.warnings:
        fields["warnings"] = len(answer.response.warnings)
    if decision is not None and decision.patch and answer.decision == "patched":
        fields["patch_ops"] = len(decision.patch)
    if errors:
        fields["errors"] = errors
    if answer.note:
        fields["note"] = answer.note
    if span is not None and span.trace_id:
        fields["trace_id"] = span.trace_id
    log_line(log, level, "admission", fields)
