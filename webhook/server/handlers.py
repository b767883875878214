"""From a parsed AdmissionReview to its response: one handler per webhook.

An overall deadline (below the webhook's `timeoutSeconds`) bounds every
evaluation, after which the answer follows the configured failure action
instead of letting the API server time out. The engine runs inline on the
event loop, on the main thread, interrupted at the deadline by an alarm
(deadline.py). What is judged comes from the request alone (the subject
rule, docs/adr/0005-existing-workloads.md).
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

from policies.budget import BudgetGuard, interrupted_policy
from policies.engine import evaluate
from policies.model import Action, Context, Decision
from policies.subject import Subject, subject_of
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
from webhook.server.record import Answer, record
from webhook.server.reload import ConfigHolder
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder
from webhook.telemetry.logs import ADMISSION_LOGGER

log = logging.getLogger(ADMISSION_LOGGER)


def _skip(uid: str, why: str) -> Answer:
    return Answer(allowed(uid), "skipped", note=why)


class Handler:
    """What both webhooks share: which requests are judged, the deadline, the
    failure action, and the record of every answer."""

    webhook: ClassVar[str]

    def __init__(
        self,
        config: ConfigHolder,
        context: Context,
        deadline: AlarmDeadline,
        *,
        events: EventRecorder | None = None,
        guard: BudgetGuard | None = None,
        deadline_s: float = 2.5,
    ) -> None:
        self.config, self.context, self.deadline = config, context, deadline
        self.events = events
        self.guard = guard if guard is not None else BudgetGuard()
        self.deadline_s = deadline_s

    def review(self, req: AdmissionRequest, started: float) -> AdmissionResponse:
        """Answer one request; raises BadReview for a request that cannot be evaluated."""
        answer = self._unjudged(req)
        if answer is None:
            outcome = self._decide(req, started)
            if isinstance(outcome, str):
                answer = self._failed(req.uid, outcome)
            elif outcome.skipped_reason:
                answer = Answer(allowed(req.uid), "skipped", outcome, outcome.skipped_reason)
            else:
                answer = self._answer(req.uid, outcome)
        record(self.webhook, req, answer, time.perf_counter() - started, self.events)
        return answer.response

    def _unjudged(self, req: AdmissionRequest) -> Answer | None:
        """Requests answered without evaluation; None when the engine must run."""
        if req.operation not in ("CREATE", "UPDATE"):
            return _skip(req.uid, f"{req.operation or 'unknown'} is never evaluated")
        if req.sub_resource and not self._ephemeral(req):
            # status, scale, binding...: not a change of the pod template
            return _skip(req.uid, f"subresource {req.sub_resource} is not evaluated")
        if not isinstance(req.object, dict):
            raise BadReview(
                f"request.object must be a JSON object for {req.operation}, "
                f"got {type(req.object).__name__ if req.object is not None else 'null'}"
            )
        return None

    @staticmethod
    def _ephemeral(req: AdmissionRequest) -> bool:
        return req.resource.resource == "pods" and req.sub_resource == "ephemeralcontainers"

    def _decide(self, req: AdmissionRequest, started: float) -> Decision | str:
        """The decision, or the reason there is none (deadline passed, engine bug)."""
        config = self.config.current
        old = req.old_object if req.operation == "UPDATE" else None
        old = old if isinstance(old, dict) else None
        subject = subject_of(req.object, config, old, req.user_info.username)
        arrived = time.perf_counter() - started
        remaining = self.deadline_s - arrived
        if remaining <= 0:  # a slow upload used up the time: say so, not "did not finish"
            metrics.ADMISSION_ERRORS.labels(self.webhook, "deadline").inc()
            return (
                f"the request took {arrived:.1f}s to arrive, past the {self.deadline_s:g}s deadline"
            )
        try:
            return self.deadline.run(lambda: self._evaluate(subject, req), remaining)
        except DeadlineExceeded as exc:
            return self._deadline_passed(exc)
        except Exception as exc:  # evaluate() never raises by contract; be safe anyway
            metrics.ADMISSION_ERRORS.labels(self.webhook, "internal").inc()
            log.exception("evaluation failed", extra={"fields": {"uid": req.uid}})
            return f"evaluation failed: {type(exc).__name__}: {exc}"

    def _guard(self, req: AdmissionRequest) -> BudgetGuard:
        # a dry run starts no cool-down: anyone may send one, and a policy
        # suspended by it would be decided by its failure action for all
        return self.guard.honoured_only() if req.dry_run else self.guard

    def _deadline_passed(self, exc: BaseException) -> str:
        metrics.ADMISSION_ERRORS.labels(self.webhook, "deadline").inc()
        running = interrupted_policy(exc)
        if running is None:
            return f"evaluation did not finish within the {self.deadline_s:g}s deadline"
        # counted as an error of that policy, as one returning over its budget is
        metrics.POLICY_ERRORS.labels(running).inc()
        cooling = "; suspended for a cool-down" if self.guard.suspended(running) else ""
        return (
            f"evaluation did not finish within the {self.deadline_s:g}s deadline "
            f"({running} was running{cooling})"
        )

    def _failed(self, uid: str, why: str) -> Answer:
        """No decision: the configured failure action decides, never a timeout."""
        action = self.config.current.raw.failure_action
        text = f"podgate could not check this request: {why}"
        if action is Action.DENY:
            refused = errored(uid, 500, f"{text}; refused (failure_action: deny)")
            return Answer(refused, "error", note=why)
        if action is Action.WARN:
            return Answer(allowed(uid, [f"{text}; admitted unchecked"]), "error", note=why)
        return Answer(allowed(uid), "error", note=why)

    def _evaluate(self, subject: Subject, req: AdmissionRequest) -> Decision:
        raise NotImplementedError

    def _answer(self, uid: str, decision: Decision) -> Answer:
        raise NotImplementedError


class Validator(Handler):
    """POST /validate: refuses what a deny policy finds, warns of the rest."""

    webhook = "validate"

    def _evaluate(self, subject: Subject, req: AdmissionRequest) -> Decision:
        return evaluate(
            subject,
            self.context,
            self.config.current,
            mutate=False,
            ephemeral_only=self._ephemeral(req),
            default_namespace=req.namespace or "default",
            guard=self._guard(req),
        )

    def _answer(self, uid: str, decision: Decision) -> Answer:
        warnings = decision.warning_lines
        if not decision.allowed:
            message = denial_message(str(decision.resource), decision.denial_lines)
            return Answer(denied(uid, message, warnings), "denied", decision)
        return Answer(allowed(uid, warnings), "warned" if warnings else "allowed", decision)


class Mutator(Handler):
    """POST /mutate: the defaults as a JSON Patch. Validation is the validating
    webhook's job; the API server calls it after us, on the patched object."""

    webhook = "mutate"

    def _unjudged(self, req: AdmissionRequest) -> Answer | None:
        answer = super()._unjudged(req)
        if answer is None and (
            self._ephemeral(req) or (req.operation == "UPDATE" and req.object.get("kind") == "Pod")
        ):
            # a running Pod's spec is immutable: a patch would make the update fail
            return _skip(req.uid, "pods are only mutated on CREATE")
        return answer

    def _evaluate(self, subject: Subject, req: AdmissionRequest) -> Decision:
        return evaluate(
            subject,
            self.context,
            self.config.current,
            validate=False,
            default_namespace=req.namespace or "default",
            guard=self._guard(req),
        )

    def _answer(self, uid: str, decision: Decision) -> Answer:
        warnings = decision.warning_lines
        if decision.patch:
            return Answer(patched(uid, decision.patch, warnings), "patched", decision)
        return Answer(allowed(uid, warnings), "allowed", decision)
