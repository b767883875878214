"""`podgate audit --watch`: the continuous audit, one active instance per cluster.

kopf delivers every create, change and deletion of the audited kinds (and,
at start-up, every existing object); each is evaluated against the webhook's
own watch caches of NetworkPolicies and Namespaces. The findings live in
memory as a few strings per failing object, never whole objects, so memory
follows the number of violations, not the size of the cluster. A periodic
full pass catches what the watch missed while the API server was away.

Event handlers are kopf's `on.event`: they keep no progress annotations on
the user's objects (kopf's change handlers would write them) and post no
kopf Events of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.config import Config
from policies.model import Action, Context, Decision
from policies.views import as_mapping
from webhook.audit import audit_decision, owned_by_workload, scan
from webhook.cluster.lease import LeaseStore
from webhook.cluster.policy_reports import REPORT_NAME
from webhook.cluster.reader import AUDITED, ClusterReader, KubeClusterReader
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder, ObjectRef, ViolationEvent, strongest_verb

log = logging.getLogger("podgate.audit")

LEASE_NAME = os.environ.get("PODGATE_AUDIT_LEASE", "podgate-audit")  # the chart sets it


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


# --- one active instance: a coordination.k8s.io Lease --------------------------


def _micro_time(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class LeaseElector:
    """Leader election on a Lease, as client-go's leaderelection does it.

    Whoever renews the Lease within its duration holds it; an expired Lease
    is taken over with optimistic concurrency (resourceVersion), so two
    candidates cannot both win.
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        duration_s: int = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.identity, self.duration_s, self.clock = store, identity, duration_s, clock
        self.last_renewed: float | None = None

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        lease = self.store.get()
        spec_body = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration_s,
            "renewTime": _micro_time(now),
        }
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": LEASE_NAME},
                "spec": {**spec_body, "acquireTime": _micro_time(now), "leaseTransitions": 0},
            }
            won = self.store.create(body)
        else:
            spec = as_mapping(lease.get("spec"))
            holder = spec.get("holderIdentity")
            renewed = _parse_time(spec.get("renewTime")) or 0.0
            duration = spec.get("leaseDurationSeconds") or self.duration_s
            expired = renewed + float(duration) < now
            if holder not in (None, "", self.identity) and not expired:
                return False
            new_spec = {**spec, **spec_body}
            if holder != self.identity:
                new_spec["acquireTime"] = _micro_time(now)
                new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            won = self.store.replace({**lease, "spec": new_spec})
        if won:
            self.last_renewed = now
        return won

    def release(self) -> None:
        """Hand the Lease back on a clean shutdown, so the next instance need not
        wait for it to expire (client-go's ReleaseOnCancel)."""
        lease = self.store.get()
        spec = as_mapping(lease.get("spec")) if lease else {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            return
        released = {**spec, "holderIdentity": None, "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(self.clock() - 2)}  # fmt: skip
        self.store.replace({**lease, "spec": released})
        self.last_renewed = None

    def holds(self) -> bool:
        """Still the leader: renewed within the Lease duration."""
        return self.last_renewed is not None and self.clock() - self.last_renewed < self.duration_s

    def wait_for_leadership(
        self, stop: threading.Event, on_tick: Callable[[], None] = lambda: None
    ) -> bool:
        while not stop.is_set():
            on_tick()
            try:
                if self.try_acquire_or_renew():
                    return True
            except Exception as exc:
                metrics.AUDIT_ERRORS.labels("lease").inc()
                log.warning("lease: %s", exc)
            stop.wait(self.duration_s / 3)
        return False

    def keep_renewing(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renew until stopped; a leader that cannot renew in time steps down."""
        while not stop.wait(self.duration_s / 3):
            try:
                self.try_acquire_or_renew()
            except Exception as exc:  # API server briefly away: retry until the Lease runs out
                metrics.AUDIT_ERRORS.labels("lease").inc()
                log.warning("lease renewal failed: %s", exc)
            if not self.holds():
                log.error("lost the audit Lease; stepping down")
                on_lost()
                return


# --- PolicyReports (wgpolicyk8s.io/v1alpha2), one per namespace ----------------


def _policy_message(finding: Finding, policy: str) -> str:
    return dict(finding.messages).get(policy, "")[:1024]


def policy_reports(
    findings: Iterable[Finding],
    severities: Mapping[str, str],
    namespaces: Iterable[str] = (),
) -> dict[str, Any]:
    """One PolicyReport body per namespace with findings (never one per request),
    and an empty one for each of `namespaces` (those reported before) that has
    none any more, so that fixed or deleted objects leave its report."""
    by_namespace: dict[str, list[Finding]] = {ns: [] for ns in namespaces}
    for finding in findings:
        by_namespace.setdefault(finding.namespace, []).append(finding)
    reports: dict[str, Any] = {}
    for namespace, items in sorted(by_namespace.items()):
        results = [
            {
                "source": "podgate",
                "policy": policy,
                "result": "fail" if action == "deny" else "warn",
                "severity": severities.get(policy, "medium"),
                "message": _policy_message(f, policy),
                "resources": [
                    {
                        "apiVersion": f.api_version,
                        "kind": f.kind,
                        "name": f.name,
                        "namespace": f.namespace,
                        "uid": f.uid,
                    }
                ],
                "timestamp": {"seconds": int(time.time()), "nanos": 0},
            }
            for f in items
            for policy, action in f.failures
        ]
        reports[namespace] = {
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {
                "name": REPORT_NAME,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "podgate"},
            },
            "summary": {
                "fail": sum(1 for r in results if r["result"] == "fail"),
                "warn": sum(1 for r in results if r["result"] == "warn"),
                "pass": 0,
                "error": 0,
                "skip": 0,
            },
            "results": results,
        }
    return reports


# --- the operator ----------------------------------------------------------------


class Auditor:
    """Evaluates objects as kopf delivers them, and runs the periodic full pass."""

    def __init__(
        self,
        config: Config,
        context: Context,
        reader: ClusterReader,
        recorder: EventRecorder | None,
        *,
        page_size: int = 500,
        on_pass: Callable[[list[Finding]], None] | None = None,
    ) -> None:
        self.config, self.context, self.reader = config, context, reader
        self.recorder, self.page_size, self.on_pass = recorder, page_size, on_pass
        self.state = AuditState()

    def observe(self, event_type: str | None, obj: Mapping[str, Any]) -> Finding | None:
        uid = str(as_mapping(obj.get("metadata")).get("uid") or "")
        if not uid:
            return None
        if event_type == "DELETED" or owned_by_workload(obj):
            self.state.update(uid, None)
            return None
        finding = finding_of(obj, audit_decision(obj, self.context, self.config))
        if self.state.update(uid, finding) and finding is not None and self.recorder is not None:
            self.recorder.record([violation_event(finding)])
        return finding

    def full_pass(self) -> None:
        started = time.monotonic()
        findings: dict[str, Finding] = {}
        self.state.begin_pass()

        def remember(obj: Mapping[str, Any], decision: Decision) -> None:
            finding = finding_of(obj, decision)
            if finding is not None and finding.uid:
                findings[finding.uid] = finding

        # the watch's own caches, not a list that may fail on its own: a pass
        # without Namespace labels would report what `mode: off` hides
        done = scan(self.reader, self.config, remember, page_size=self.page_size, ctx=self.context)
        missed = {kind.kind for kind in AUDITED if kind.plural in done.unreadable}
        for plural, why in done.unreadable.items():
            metrics.AUDIT_ERRORS.labels("list").inc()
            log.warning("could not list %s: %s", plural, why)
        for kept in self.state.findings():  # not seen is not fixed: keep what was known
            if kept.kind in missed:
                findings.setdefault(kept.uid, kept)
        fresh = self.state.replace_all(findings)
        if self.recorder is not None:
            self.recorder.record([violation_event(f) for f in fresh])
        for kind, count in done.seen.items():
            if kind not in missed:
                metrics.AUDIT_OBJECTS.labels(kind).set(count)
        metrics.AUDIT_PASS_DURATION.set(time.monotonic() - started)
        metrics.AUDIT_LAST_PASS.set(time.time())
        if self.on_pass is not None:
            self.on_pass(self.state.findings())

    def resync_forever(self, stop: threading.Event, every_s: float) -> None:
        while not stop.is_set():
            try:
                self.full_pass()
            except Exception as exc:  # API server unavailable: try again next round
                metrics.AUDIT_ERRORS.labels("full_pass").inc()
                log.warning("full audit pass failed: %s", exc)
            stop.wait(every_s)


class Heartbeat:
    """The liveness of `audit --watch`: ticks from whichever loop runs now,
    the wait for the Lease on standby, kopf's event loop when leading. A
    loop that stops ticking for `stale_s` fails /healthz, and the kubelet
    restarts the pod; the pod serves no traffic, so ready means alive."""

    def __init__(self, stale_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.stale_s, self.clock = stale_s, clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self.clock()

    def liveness(self) -> tuple[bool, str]:
        age = self.clock() - self.last
        if age > self.stale_s:
            return False, f"no heartbeat for {age:.0f}s: the Lease wait or kopf's loop is stuck"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return self.liveness()


def _identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def run_watch(args: argparse.Namespace, config: Config, api_client: Any) -> int:
    from webhook.cluster import operator
    from webhook.cluster.cache import cluster_cache
    from webhook.cluster.events import KubeEventSink
    from webhook.cluster.lease import KubeLeaseStore
    from webhook.cluster.policy_reports import existing_policy_reports, write_policy_reports
    from webhook.telemetry import logs
    from webhook.telemetry.health import HealthServer

    logs.configure(args.log_level)
    namespace = os.environ.get("POD_NAMESPACE") or "default"
    identity = _identity()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()  # on standby, or before kopf takes the signals over

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    heartbeat = Heartbeat()
    # /metrics, and /healthz and /readyz that fail when no loop ticks any more
    HealthServer(heartbeat, "0.0.0.0", args.metrics_port).start()
    elector = LeaseElector(KubeLeaseStore(api_client, namespace, LEASE_NAME), identity)
    log.info("waiting for the audit Lease %s/%s as %s", namespace, LEASE_NAME, identity)
    if not elector.wait_for_leadership(stop, on_tick=heartbeat.beat):
        return 0
    metrics.AUDIT_LEADER.set(1)

    def step_down() -> None:
        # kopf stops on SIGTERM as on a Deployment's shutdown; a stop_flag would
        # leave one of its executor threads waiting on it and hang the exit
        stop.set()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(
        target=elector.keep_renewing, args=(stop, step_down), daemon=True, name="lease"
    ).start()

    cache = cluster_cache(api_client, stale_after_s=120.0)
    cache.start()
    recorder = EventRecorder(KubeEventSink(api_client, identity, "podgate.dev/audit"))
    recorder.start()
    severities = {pid: str(p.meta.severity) for pid, p in config.registry.policies.items()}

    # namespaces whose report may hold results
    reported = existing_policy_reports(api_client) if args.policy_reports else set()

    def publish(findings: list[Finding]) -> None:
        if args.policy_reports:
            try:
                reports = policy_reports(findings, severities, reported)
                failed = write_policy_reports(api_client, reports)
                reported.clear()
                reported.update(ns for ns, body in reports.items() if body["results"])
                reported.update(failed)
            except Exception as exc:
                metrics.AUDIT_ERRORS.labels("policy_reports").inc()
                log.warning("could not write PolicyReports: %s", exc)

    auditor = Auditor(
        config,
        cache,
        KubeClusterReader(api_client),
        recorder,
        page_size=args.page_size,
        on_pass=publish,
    )
    threading.Thread(
        target=auditor.resync_forever,
        args=(stop, args.resync_seconds),
        daemon=True,
        name="resync",
    ).start()

    def on_event(event_type: str | None, obj: dict[str, Any]) -> None:
        try:
            auditor.observe(event_type, obj)
        except Exception as exc:
            metrics.AUDIT_ERRORS.labels("event").inc()
            log.warning("could not audit an object: %s", exc)

    try:
        operator.watch(
            AUDITED,
            on_event,
            # a short timeout: an API server that does not answer must not
            # hold the start (and /healthz) for eight 60 s lists
            probe=KubeClusterReader(api_client, request_timeout=5.0),
            beat=heartbeat.beat,
            stop=stop,
            kubeconfig=args.kubeconfig,
        )
    finally:
        stop.set()
        cache.stop()
        recorder.stop()
        metrics.AUDIT_LEADER.set(0)
        with contextlib.suppress(Exception):  # best effort: otherwise it expires
            elector.release()
    return 0
