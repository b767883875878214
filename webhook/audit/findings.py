"""What is wrong with each object the watch has seen: a few strings per failing
object, never whole objects, so memory follows the number of violations, not
the size of the cluster; and the violation gauges, kept in step."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.model import Action, Decision
from policies.views import as_mapping
from webhook.telemetry import metrics
from webhook.telemetry.events import ObjectRef, ViolationEvent, strongest_verb


@dataclass(frozen=True, slots=True)
class Finding:
    """What is wrong with one object: enough for gauges, Events and reports."""

    namespace: str
    kind: str
    name: str
    api_version: str
    uid: str
    failures: tuple[tuple[str, str], ...]  # (policy id, effective action)
    # (policy id, that policy's own lines): a PolicyReport result is per policy
    messages: tuple[tuple[str, str], ...]
    # the failed policies configured to deny: what enforcement would refuse,
    # even where the namespace's audit mode only warned
    required: frozenset[str] = frozenset()

    @property
    def message(self) -> str:
        """Every policy's lines: an Event's text."""
        return "; ".join(text for _, text in self.messages)


def finding_of(obj: Mapping[str, Any], decision: Decision) -> Finding | None:
    recorded = decision.recorded
    if not recorded:
        return None
    metadata = as_mapping(obj.get("metadata"))
    return Finding(
        namespace=str(metadata.get("namespace") or ""),
        kind=str(obj.get("kind") or ""),
        name=str(metadata.get("name") or ""),
        api_version=str(obj.get("apiVersion") or ""),
        uid=str(metadata.get("uid") or ""),
        failures=tuple(sorted((r.policy, str(r.effective_action)) for r in recorded)),
        messages=tuple((r.policy, "; ".join(r.lines())) for r in recorded),
        required=frozenset(r.policy for r in recorded if r.action == Action.DENY),
    )


class AuditState:
    """Current findings by object uid, with the violation gauges kept in step.

    Counts are adjusted incrementally on each watch event (a cluster with
    10,000 Pods sends many) and rebuilt from scratch after a full pass.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._findings: dict[str, Finding] = {}
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._during_pass: set[str] | None = None  # uids the watch updated since it began

    def begin_pass(self) -> None:
        with self._lock:
            self._during_pass = set()

    def __len__(self) -> int:
        return len(self._findings)

    def get(self, uid: str) -> Finding | None:
        return self._findings.get(uid)

    def findings(self) -> list[Finding]:
        with self._lock:
            return list(self._findings.values())

    def _adjust(self, finding: Finding, delta: int) -> set[tuple[str, str, str]]:
        keys = {(policy, finding.namespace, action) for policy, action in finding.failures}
        for key in keys:
            self._counts[key] += delta
        return keys

    def _publish(self, keys: Iterable[tuple[str, str, str]]) -> None:
        for key in keys:
            count = self._counts.get(key, 0)
            if count > 0:
                metrics.AUDIT_VIOLATIONS.labels(*key).set(count)
            else:
                self._counts.pop(key, None)
                with contextlib.suppress(KeyError):  # never published
                    metrics.AUDIT_VIOLATIONS.remove(*key)

    def update(self, uid: str, finding: Finding | None) -> bool:
        """Store the object's finding (None: it passes); True when it changed."""
        with self._lock:
            if self._during_pass is not None:
                self._during_pass.add(uid)
            old = self._findings.get(uid)
            if old == finding:
                return False
            touched: set[tuple[str, str, str]] = set()
            if old is not None:
                touched |= self._adjust(old, -1)
                del self._findings[uid]
            if finding is not None:
                touched |= self._adjust(finding, +1)
                self._findings[uid] = finding
            self._publish(touched)
            return old is None or finding is None or old.failures != finding.failures

    def replace_all(self, findings: Mapping[str, Finding]) -> list[Finding]:
        """After a full pass: the new truth. Returns the findings that are new.

        An object the watch updated while the pass ran (deleted, fixed,
        created) may have been listed before that: what the watch says wins,
        or the pass would bring a deleted object back, with a fresh Event.
        """
        with self._lock:
            findings = dict(findings)
            for uid in self._during_pass or ():
                live = self._findings.get(uid)
                if live is None:
                    findings.pop(uid, None)
                else:
                    findings[uid] = live
            self._during_pass = None
            fresh = [
                f
                for uid, f in findings.items()
                if self._findings.get(uid) is None or self._findings[uid].failures != f.failures
            ]
            stale = set(self._counts)
            self._findings = dict(findings)
            self._counts = Counter()
            for finding in self._findings.values():
                self._adjust(finding, +1)
            self._publish(stale | set(self._counts))
            return fresh


def violation_event(finding: Finding) -> ViolationEvent:
    involved = ObjectRef(
        finding.api_version, finding.kind, finding.name, finding.namespace, finding.uid or None
    )
    policies = tuple(sorted({policy for policy, _ in finding.failures}))
    verb = strongest_verb(Action(action) for _, action in finding.failures)
    text = f"Audit: {finding.kind} {finding.namespace}/{finding.name} would be {verb.lower()}: "
    # the Event's action is what was done: the audit denied and warned nobody
    return ViolationEvent(
        finding.namespace, involved, "Audited", policies, (text + finding.message)[:1024]
    )
