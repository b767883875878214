"""From a parsed AdmissionReview to its response: one handler per webhook.

An overall deadline (below the webhook's `timeoutSeconds`) bounds every
evaluation, after which each policy that applies decides the object by its
failure action (policies/failure.py) instead of letting the API server time
out. The engine runs inline on the
event loop, on the main thread, interrupted at the deadline by an alarm
(deadline.py). What is judged comes from the request alone (the subject
rule, docs/adr/0005-existing-workloads.md).
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

from policies.budget import interrupted_policy
from policies.engine import INVALID_MANIFEST, evaluate, plain_ref
from policies.failure import unevaluated
from policies.model import Action, Context, Decision, Outcome
from policies.subject import Subject, subject_of
from webhook.server.admission import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    allowed,
    denial_message,
    denied,
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
        deadline_s: float = 2.5,
    ) -> None:
        self.config, self.context, self.deadline = config, context, deadline
        self.events = events
        self.deadline_s = deadline_s

    def review(self, req: AdmissionRequest, started: float) -> AdmissionResponse:
        """Answer one request; raises BadReview for a request that cannot be evaluated."""
        answer = self._unjudged(req)
        if answer is None:
            decision, failed = self._decide(req, started)
            if decision.skipped_reason:
                answer = Answer(allowed(req.uid), "skipped", decision, decision.skipped_reason)
            else:
                answer = self._answer(req.uid, decision)
            if failed:  # counted as an error whatever the failure actions decided
                answer = Answer(answer.response, "error", answer.result, failed)
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

    def _decide(self, req: AdmissionRequest, started: float) -> tuple[Decision, str]:
        """The decision, and why the engine did not reach it itself ("" when it
        did): then the failure action of each policy that applies decides."""
        config = self.config.current
        old = req.old_object if req.operation == "UPDATE" else None
        old = old if isinstance(old, dict) else None
        subject = subject_of(req.object, config, old, req.user_info.username)
        arrived = time.perf_counter() - started
        remaining = self.deadline_s - arrived
        running: str | None = None
        if remaining <= 0:  # a slow upload used up the time: say so, not "did not finish"
            metrics.ADMISSION_ERRORS.labels(self.webhook, "deadline").inc()
            why = (
                f"the request took {arrived:.1f}s to arrive, past the {self.deadline_s:g}s deadline"
            )
        else:
            try:
                return self.deadline.run(lambda: self._evaluate(subject, req), remaining), ""
            except DeadlineExceeded as exc:
                metrics.ADMISSION_ERRORS.labels(self.webhook, "deadline").inc()
                running = interrupted_policy(exc)
                why = f"the evaluation did not finish within the {self.deadline_s:g}s deadline"
            except Exception as exc:  # evaluate() never raises by contract; be safe anyway
                metrics.ADMISSION_ERRORS.labels(self.webhook, "internal").inc()
                log.exception("evaluation failed", extra={"fields": {"uid": req.uid}})
                why = f"the evaluation failed: {type(exc).__name__}"
        note = f"{why}; {running} was running" if running else why
        return self._unevaluated(subject, req, why, running), note

    def _unevaluated(
        self, subject: Subject, req: AdmissionRequest, why: str, running: str | None
    ) -> Decision:
        return unevaluated(
            subject,
            self.context,
            self.config.current,
            why,
            running=running,
            ephemeral_only=self._ephemeral(req),
            default_namespace=req.namespace or "default",
        )

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
        )

    def _answer(self, uid: str, decision: Decision) -> Answer:
        warnings = decision.warning_lines
        if not decision.allowed:
            violations: list[str] = []
            unchecked: list[str] = []
            for result in decision.failing(Action.DENY):
                could_not = result.outcome is Outcome.ERROR and result.policy != INVALID_MANIFEST
                (unchecked if could_not else violations).extend(result.lines())
            message = denial_message(str(decision.resource), violations, unchecked)
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

    def _unevaluated(
        self, subject: Subject, req: AdmissionRequest, why: str, running: str | None
    ) -> Decision:
        # Nothing to refuse: the validating webhook judges the object, unpatched.
        detail = f"{why}; {running} was running" if running else why
        return Decision(
            plain_ref(subject.obj, req.namespace or "default"),
            self.config.current.enforcement,
            mutation_errors=(f"podgate applied no defaults: {detail}",),
        )

    def _evaluate(self, subject: Subject, req: AdmissionRequest) -> Decision:
        return evaluate(
            subject,
            self.context,
            self.config.current,
            validate=False,
            default_namespace=req.namespace or "default",
        )

    def _answer(self, uid: str, decision: Decision) -> Answer:
        warnings = decision.warning_lines
        if decision.patch:
            return Answer(patched(uid, decision.patch, warnings), "patched", decision)
        return Answer(allowed(uid, warnings), "allowed", decision)
