"""From a parsed AdmissionReview to its response: what the two routes share.

An overall deadline (below the webhook's `timeoutSeconds`) bounds every
evaluation, after which the answer follows the configured failure action
instead of letting the API server time out. The engine runs inline on the
event loop, on the main thread, interrupted at the deadline by an alarm
(deadline.py). Every answer is counted, logged as one JSON line and, when a
policy failed and the request is not a dry run, turned into Events on a
background queue.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from policies.engine import BudgetGuard, evaluate, interrupted_policy
from policies.model import Action, Context, Decision, Outcome
from policies.subject import Write, subject_of
from webhook.server.admission import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    allowed,
    denial_message,
    denied,
    errored,
    patched,
)
from webhook.server.deadline import AlarmDeadline, DeadlineExceeded
from webhook.server.reload import ConfigHolder
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder, events_for
from webhook.telemetry.logs import ADMISSION_LOGGER, log_line

Webhook = Literal["validate", "mutate"]
log = logging.getLogger(ADMISSION_LOGGER)


class Answer(NamedTuple):  # not a frozen dataclass: cheaper to make
    response: AdmissionResponse
    decision: str  # the metric label: allowed, warned, denied, patched, skipped, error
    result: Decision | None = None
    note: str = ""


def _skip(uid: str, why: str) -> Answer:
    return Answer(allowed(uid), "skipped", note=why)


class Admitter:
    def __init__(
        self,
        config: ConfigHolder,
        context: Context,
        deadline: AlarmDeadline,
        *,
        recorder: EventRecorder | None = None,
        guard: BudgetGuard | None = None,
        deadline_s: float = 2.5,
    ) -> None:
        self.config = config
        self.context = context
        self.deadline = deadline
        self.recorder = recorder
        self.guard = guard if guard is not None else BudgetGuard()
        self.deadline_s = deadline_s
        # True while the server drains before it stops: answers close their connection.
        self.draining: Callable[[], bool] = lambda: False

    # --- deciding ---------------------------------------------------------------
    def _precheck(self, webhook: Webhook, req: AdmissionRequest) -> Answer | None:
        """Requests answered without evaluation; None when the engine must run."""
        if req.operation not in ("CREATE", "UPDATE"):
            return _skip(req.uid, f"{req.operation or 'unknown'} is never evaluated")
        ephemeral = req.resource.resource == "pods" and req.sub_resource == "ephemeralcontainers"
        if req.sub_resource and not ephemeral:
            # status, scale, binding...: not a change of the pod template
            return _skip(req.uid, f"subresource {req.sub_resource} is not evaluated")
        if not isinstance(req.object, dict):
            raise BadReview(
                f"request.object must be a JSON object for {req.operation}, "
                f"got {type(req.object).__name__ if req.object is not None else 'null'}"
            )
        if webhook == "mutate" and (
            ephemeral or (req.operation == "UPDATE" and req.object.get("kind") == "Pod")
        ):
            # a running Pod's spec is immutable: a patch would make the update fail
            return _skip(req.uid, "pods are only mutated on CREATE")
        return None

    def _evaluate(self, webhook: Webhook, req: AdmissionRequest, started: float) -> Decision | str:
        """The decision, or the reason there is none (deadline passed, engine bug)."""
        ephemeral = req.sub_resource == "ephemeralcontainers"
        config = self.config.current
        old = req.old_object if req.operation == "UPDATE" else None
        write = Write(req.object, old if isinstance(old, dict) else None, req.user_info.username)
        call = functools.partial(
            evaluate,
            subject_of(write, config),
            self.context,
            config,
            validate=webhook == "validate",
            mutate=webhook == "mutate",
            ephemeral_only=ephemeral,
            default_namespace=req.namespace or "default",
            # a dry run starts no cool-down: anyone may send one, and a policy
            # suspended by it would be decided by its failure action for all
            guard=self.guard.honoured_only() if req.dry_run else self.guard,
        )
        arrived = time.perf_counter() - started
        remaining = self.deadline_s - arrived
        if remaining <= 0:  # a slow upload used up the time: say so, not "did not finish"
            metrics.ADMISSION_ERRORS.labels(webhook, "deadline").inc()
            return (
                f"the request took {arrived:.1f}s to arrive, past the {self.deadline_s:g}s deadline"
            )
        try:
            return self.deadline.run(call, remaining)
        except DeadlineExceeded as exc:
            return self._deadline_passed(webhook, exc)
        except Exception as exc:  # evaluate() never raises by contract; be safe anyway
            return self._internal_error(webhook, req, exc)

    def _deadline_passed(self, webhook: Webhook, exc: BaseException | None = None) -> str:
        metrics.ADMISSION_ERRORS.labels(webhook, "deadline").inc()
        running = interrupted_policy(exc) if exc is not None else None
        if running is None:
            return f"evaluation did not finish within the {self.deadline_s:g}s deadline"
        # counted as an error of that policy, as one returning over its budget is
        metrics.POLICY_ERRORS.labels(running).inc()
        cooling = "; suspended for a cool-down" if self.guard.suspended(running) else ""
        return (
            f"evaluation did not finish within the {self.deadline_s:g}s deadline "
            f"({running} was running{cooling})"
        )

    @staticmethod
    def _internal_error(webhook: Webhook, req: AdmissionRequest, exc: Exception) -> str:
        metrics.ADMISSION_ERRORS.labels(webhook, "internal").inc()
        log.exception("evaluation failed", extra={"fields": {"uid": req.uid}})
        return f"evaluation failed: {type(exc).__name__}: {exc}"

    def _failed(self, uid: str, why: str) -> Answer:
        """No decision: the configured failure action decides, never a timeout."""
        action = self.config.current.raw.failure_action
        text = f"podgate could not check this request: {why}"
        if action is Action.DENY:
            return Answer(errored(uid, 500, f"{text}; refused (failure_action: deny)"), "error")
        if action is Action.WARN:
            return Answer(allowed(uid, [f"{text}; admitted unchecked"]), "error")
        return Answer(allowed(uid), "error")

    @staticmethod
    def _answer(webhook: Webhook, uid: str, decision: Decision) -> Answer:
        if decision.skipped_reason:
            return Answer(allowed(uid), "skipped", decision, decision.skipped_reason)
        warnings = decision.warning_lines
        if webhook == "mutate":
            # validation is the validating webhook's job; it runs after us on the patched object
            if decision.patch:
                return Answer(patched(uid, decision.patch, warnings), "patched", decision)
            return Answer(allowed(uid, warnings), "allowed", decision)
        if not decision.allowed:
            message = denial_message(str(decision.resource), decision.denial_lines)
            return Answer(denied(uid, message, warnings), "denied", decision)
        return Answer(allowed(uid, warnings), "warned" if warnings else "allowed", decision)

    def review(self, webhook: Webhook, req: AdmissionRequest, started: float) -> AdmissionResponse:
        """Answer one request; raises BadReview for a request that cannot be evaluated."""
        answer = self._precheck(webhook, req)
        if answer is None:
            outcome = self._evaluate(webhook, req, started)
            if isinstance(outcome, str):
                answer = self._failed(req.uid, outcome)
                answer = Answer(answer.response, answer.decision, note=outcome)
            else:
                answer = self._answer(webhook, req.uid, outcome)
        self._record(webhook, req, answer, time.perf_counter() - started)
        return answer.response

    # --- recording --------------------------------------------------------------
    def _record(self, webhook: Webhook, req: AdmissionRequest, answer: Answer, took: float) -> None:
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
        if (
            decision is not None
            and webhook == "validate"
            and not dry_run
            and self.recorder is not None
            and decision.recorded
        ):
            self.recorder.record(
                events_for(
                    decision, operation=req.operation, user=req.user_info.username,
                    obj=req.object if isinstance(req.object, dict) else None,
                )
            )  # fmt: skip
        level = logging.WARNING if errors or answer.decision == "error" else logging.INFO
        if not log.isEnabledFor(level):
            return
        ref = decision.resource if decision is not None else None
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
        log_line(log, level, "admission", fields)
