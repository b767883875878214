"""From a parsed AdmissionReview to its response: what the two routes share.

An overall deadline (below the webhook's `timeoutSeconds`) bounds every
evaluation, after which the answer follows the configured failure action
instead of letting the API server time out. In `podgate serve` the engine
runs inline on the event loop, interrupted at the deadline by an alarm
(deadline.py); where the loop is not on the main thread (podgate embedded in
another program, the in-process tests) it runs on a pool of threads
(evaluator.py) and the deadline stops the wait instead. Every
answer is counted, logged as one JSON line and, when a policy failed and the
request is not a dry run, turned into Events on a background queue.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from policies.engine import BudgetGuard, evaluate, interrupted_policy
from policies.model import Action, Context, Decision, Outcome
from policies.views import controller_reference
from policies.workloads import pod_template, with_template_of
from webhook import metrics
from webhook.admission import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    allowed,
    denial_message,
    denied,
    errored,
    patched,
)
from webhook.deadline import AlarmDeadline, DeadlineExceeded
from webhook.evaluator import EvaluationPool
from webhook.events import EventRecorder, events_for
from webhook.logs import ADMISSION_LOGGER, log_line
from webhook.owners import RELEASERS, OwnerLookup, judged_template, made_by_its_controller
from webhook.reload import ConfigHolder

Webhook = Literal["validate", "mutate"]
log = logging.getLogger(ADMISSION_LOGGER)


class Answer(NamedTuple):  # not a frozen dataclass: cheaper to make
    response: AdmissionResponse
    decision: str  # the metric label: allowed, warned, denied, patched, skipped, error
    result: Decision | None = None
    note: str = ""


def _skip(uid: str, why: str) -> Answer:
    return Answer(allowed(uid), "skipped", note=why)


def _deleting(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, Mapping) and bool(meta.get("deletionTimestamp"))


class Admitter:
    def __init__(
        self,
        config: ConfigHolder,
        context: Context,
        *,
        pool: EvaluationPool,
        recorder: EventRecorder | None = None,
        guard: BudgetGuard | None = None,
        deadline_s: float = 2.5,
        alarm: AlarmDeadline | None = None,
        owners: OwnerLookup | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self.pool = pool
        self.recorder = recorder
        self.guard = guard if guard is not None else BudgetGuard()
        self.deadline_s = deadline_s
        self.alarm = alarm  # set: evaluate inline, on the main thread
        self.owners = owners  # the workload that made a Pod (cluster.KubeOwners.owner)
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
        if req.operation == "UPDATE" and _deleting(req.object):
            # finalizer removal on an object being deleted must never be blocked
            return _skip(req.uid, "object is being deleted")
        if webhook == "mutate" and (
            ephemeral or (req.operation == "UPDATE" and req.object.get("kind") == "Pod")
        ):
            # a running Pod's spec is immutable: a patch would make the update fail
            return _skip(req.uid, "pods are only mutated on CREATE")
        if (
            webhook == "mutate"
            and req.operation == "UPDATE"
            and isinstance(req.old_object, dict)
            and pod_template(req.object) == pod_template(req.old_object)
        ):
            # A change that leaves the pod template alone (a label, suspend, the
            # controller's revision annotation) must not rewrite it: that would
            # roll out a workload from before podgate, and a Job's template is
            # immutable, so the API server would refuse the update.
            return _skip(req.uid, "the pod template is unchanged")
        return None

    async def _evaluate(
        self,
        webhook: Webhook,
        req: AdmissionRequest,
        started: float,
        made_from: tuple[Mapping[str, Any], str] | None = None,
    ) -> Decision | str:
        """The decision, or the reason there is none (deadline passed, engine bug).

        `made_from`: the object as the template podgate judged has it, and how
        to say so; it stands for what the object was (else `oldObject`).
        """
        ephemeral = req.sub_resource == "ephemeralcontainers"
        old, old_is = made_from or (None, "as before this update")
        if made_from is None and req.operation == "UPDATE":
            old = req.old_object
        call = functools.partial(
            evaluate,
            req.object,
            self.context,
            self.config.current,
            validate=webhook == "validate",
            mutate=webhook == "mutate",
            ephemeral_only=ephemeral,
            default_namespace=req.namespace or "default",
            # a dry run starts no cool-down: anyone may send one, and a policy
            # suspended by it would be decided by its failure action for all
            guard=self.guard.honoured_only() if req.dry_run else self.guard,
            # what the object was: a denial it had already is a warning on update
            old=old if webhook == "validate" and isinstance(old, dict) else None,
            old_is=old_is,
            old_is_template=made_from is not None,
        )
        arrived = time.perf_counter() - started
        remaining = self.deadline_s - arrived
        if remaining <= 0:  # a slow upload used up the time: say so, not "did not finish"
            metrics.ADMISSION_ERRORS.labels(webhook, "deadline").inc()
            return (
                f"the request took {arrived:.1f}s to arrive, past the {self.deadline_s:g}s deadline"
            )
        if self.alarm is not None:
            try:
                return self.alarm.run(call, remaining)
            except DeadlineExceeded as exc:
                return self._deadline_passed(webhook, exc)
            except Exception as exc:  # evaluate() never raises by contract; be safe anyway
                return self._internal_error(webhook, req, exc)
        future = self.pool.submit(call)
        # a timer that cancels the future: cheaper than asyncio.wait_for's wrapper
        timer = asyncio.get_running_loop().call_later(max(remaining, 0.001), future.cancel)
        try:
            return await future
        except asyncio.CancelledError:
            if not future.cancelled() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # we are being cancelled, not the evaluation
            return self._deadline_passed(webhook)
        except Exception as exc:  # evaluate() never raises by contract; be safe anyway
            return self._internal_error(webhook, req, exc)
        finally:
            timer.cancel()

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

    async def review(
        self, webhook: Webhook, req: AdmissionRequest, started: float
    ) -> AdmissionResponse:
        """Answer one request; raises BadReview for a request that cannot be evaluated."""
        answer = self._precheck(webhook, req)
        if answer is None:
            outcome = await self._evaluate(webhook, req, started)
            made_of = self._made_by(webhook, req, outcome)
            if made_of is not None and isinstance(outcome, Decision):
                outcome = await self._as_its_template(webhook, req, started, outcome, made_of)
            if isinstance(outcome, str):
                answer = self._failed(req.uid, outcome)
                answer = Answer(answer.response, answer.decision, note=outcome)
            else:
                answer = self._answer(webhook, req.uid, outcome)
        self._record(webhook, req, answer, time.perf_counter() - started)
        return answer.response

    def _made_by(
        self, webhook: Webhook, req: AdmissionRequest, outcome: Decision | str
    ) -> Mapping[str, Any] | None:
        """The object whose controller made what a refusal is about, or None.

        A Pod its controller creates (`made_by_its_controller`); or a workload
        a controller made and let go (an orphaning delete: the garbage
        collector removes the ownerReference, and the workload, skipped
        while it had a controller, is judged alone for the first time).
        """
        if (
            webhook != "validate"
            or not isinstance(outcome, Decision)
            or outcome.allowed
            or self.owners is None
            or not isinstance(req.object, dict)
            or not self.config.current.raw.allow_existing_violations
        ):
            return None
        if req.operation == "CREATE" and req.kind.kind == "Pod":
            kind = (controller_reference(req.object) or {}).get("kind")
            return req.object if made_by_its_controller(req.user_info.username, kind) else None
        old = req.old_object
        if (
            req.operation == "UPDATE"
            and req.user_info.username in RELEASERS
            and isinstance(old, dict)
            and pod_template(old) is not None  # a workload, never a Pod
            and controller_reference(old) is not None
            and controller_reference(req.object) is None
            and pod_template(req.object) == pod_template(old)
        ):
            return old
        return None

    async def _as_its_template(
        self,
        webhook: Webhook,
        req: AdmissionRequest,
        started: float,
        decision: Decision,
        made_of: Mapping[str, Any],
    ) -> Decision | str:
        """What a controller made, refused only for what its template had, is
        admitted with those violations as warnings.

        The template was admitted with them (before podgate, in audit mode,
        while a policy only warned); refusing its Pods would stop the workload
        scaling, rolling out, or replacing a lost Pod (refusing an orphaned
        workload, its orphaning delete), and fix nothing. Only a template
        podgate judged counts (`judged_template`, read from the API server,
        uids matching the references), and a violation that depends on the
        cluster (a NetworkPolicy deleted since) is not inherited. Without an
        answer in time, the first decision stands.
        """
        if self.owners is None:  # `_made_by` says so already; for the type checker
            return decision
        namespace = req.namespace or decision.resource.namespace or "default"
        remaining = self.deadline_s - (time.perf_counter() - started)
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(judged_template, self.owners, namespace, made_of),
                max(remaining, 0.001),
            )
        except TimeoutError:
            return decision
        made = with_template_of(found[0], req.object) if found is not None else None
        if found is None or made is None:
            return decision
        made_from = (made, f"as in the template of {found[1]}")
        judged = await self._evaluate(webhook, req, started, made_from=made_from)
        # out of time now: the refusal stands, never the failure action's admission
        return judged if isinstance(judged, Decision) else decision

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
