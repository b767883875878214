"""`podgate audit --watch`: the continuous audit, one active instance per cluster.

Every create, change and deletion of the audited kinds (and, at start-up,
every existing object) is evaluated against watch caches of NetworkPolicies
and Namespaces, as the webhook keeps them. A periodic full pass catches what
the watch missed while the API server was away.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from policies.config import Config
from policies.model import Context, Decision
from policies.views import as_mapping
from webhook.audit.findings import AuditState, Finding, finding_of, violation_event
from webhook.audit.lease import LEASE_NAME, LeaseElector
from webhook.audit.reports import policy_reports
from webhook.audit.scan import audit_decision, owned_by_workload, scan
from webhook.cluster.reader import AUDITED, ClusterReader, KubeClusterReader
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder

log = logging.getLogger("podgate.audit")


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
    try:
        side = HealthServer(heartbeat, "0.0.0.0", args.metrics_port)
    except (OSError, OverflowError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"podgate audit: cannot listen on 0.0.0.0:{args.metrics_port} (--metrics-port): "
              f"{why}; stop what uses it or give --metrics-port another port",
              file=sys.stderr)  # fmt: skip
        return 2
    side.start()
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
            identity=identity,
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
