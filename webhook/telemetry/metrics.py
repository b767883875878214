"""Every Prometheus collector of the webhook, in one place.

Names are prefixed `podgate_`. Label values are bounded: webhook, kind (the
workload kinds, else `other`), operation, decision, dry_run, policy ids (fixed
by the config), actions, results and fixed reasons. Never names or uids.

With several workers (`--workers N`) each worker is a process with its own
collectors; prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set by `podgate serve` before any worker starts) writes their values to files
that the supervisor aggregates on /metrics. Gauges therefore declare how they
combine across processes (`multiprocess_mode`); the argument is ignored in a
single process.
"""

from __future__ import annotations

import bisect
import functools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from policies.model import Outcome, PolicyResult
from policies.workloads import POD_KINDS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# 0.5 ms to 10 s: a webhook answer is normally a millisecond or two; the top
# buckets show requests that approach the API server's webhook timeout.
ADMISSION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
POLICY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0)

OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

ADMISSION_REQUESTS = Counter(
    "podgate_admission_requests_total",
    "Admission requests answered, by webhook, kind, operation, decision and dry_run.",
    ["webhook", "kind", "operation", "decision", "dry_run"],
)
ADMISSION_DURATION = Histogram(
    "podgate_admission_duration_seconds",
    "Time from the request body being read to the response being built.",
    ["webhook"],
    buckets=ADMISSION_BUCKETS,
)
INVALID_REQUESTS = Counter(
    "podgate_admission_invalid_requests_total",
    "Requests refused before evaluation (malformed review, wrong content type, too large).",
    ["webhook", "code"],
)
ADMISSION_ERRORS = Counter(
    "podgate_admission_errors_total",
    "Requests decided by the failure action because evaluation did not complete.",
    ["webhook", "reason"],
)
IN_FLIGHT = Gauge(
    "podgate_admission_requests_in_flight",
    "Admission requests being processed.",
    ["webhook"],
    multiprocess_mode="livesum",
)
POLICY_RESULTS = Counter(
    "podgate_policy_results_total",
    "Policy results, by policy, effective action and result (pass, fail, skip, error).",
    ["policy", "action", "result"],
)
POLICY_DURATION = Histogram(
    "podgate_policy_duration_seconds",
    "Time one policy took on one object.",
    ["policy"],
    buckets=POLICY_BUCKETS,
)
POLICY_ERRORS = Counter(
    "podgate_policy_errors_total",
    "Policies that raised or ran over their time budget.",
    ["policy"],
)
EVENTS_SENT = Counter("podgate_events_sent_total", "Kubernetes Events created.")
EVENTS_AGGREGATED = Counter(
    "podgate_events_aggregated_total",
    "Repeats of a recent Event counted on it instead of being sent again.",
)
EVENTS_DROPPED = Counter(
    "podgate_events_dropped_total",
    "Events not sent: queue full, rate limited, or the API call failed.",
    ["reason"],
)
CACHE_SYNCED = Gauge(
    "podgate_cluster_cache_synced",
    "1 when the cluster cache of this resource has synced and its watch is healthy.",
    ["resource"],
    multiprocess_mode="livemin",
)
CACHE_AGE = Gauge(
    "podgate_cluster_cache_age_seconds",
    "Seconds since the cache of this resource was last confirmed current by its watch.",
    ["resource"],
    multiprocess_mode="livemax",
)
CONNECTIONS = Gauge(
    "podgate_connections",
    "Open connections to the admission port that completed their TLS handshake.",
    multiprocess_mode="livesum",
)
CONNECTIONS_CLOSED = Counter(
    "podgate_connections_closed_total",
    "Connections podgate closed itself, by reason: evicted (the oldest idle one, to make "
    "room under --max-connections), client-name (a client certificate not allowed).",
    ["reason"],
)
CERT_EXPIRY = Gauge(
    "podgate_certificate_expiry_timestamp_seconds",
    "Unix time at which the serving certificate expires.",
    # max, not min: the supervisor's own (never set) 0 must not win, and after a
    # rotation the newest certificate is the one being served
    multiprocess_mode="livemax",
)
CONFIG_RELOADS = Counter(
    "podgate_config_reloads_total",
    "Config reloads after the file changed, by result (success, failure).",
    ["result"],
)
CONFIG_LAST_RELOAD = Gauge(
    "podgate_config_last_reload_success_timestamp_seconds",
    "Unix time of the last successful config load.",
    multiprocess_mode="livemax",
)

# --- the background audit (`podgate audit --watch`) ---------------------------
AUDIT_VIOLATIONS = Gauge(
    "podgate_audit_violations",
    "Objects in the cluster currently failing a policy, by policy, namespace and action.",
    ["policy", "namespace", "action"],
    multiprocess_mode="liveall",
)
AUDIT_OBJECTS = Gauge(
    "podgate_audit_objects",
    "Objects evaluated in the last full audit pass, by kind.",
    ["kind"],
    multiprocess_mode="liveall",
)
AUDIT_LAST_PASS = Gauge(
    "podgate_audit_last_full_pass_timestamp_seconds",
    "Unix time at which the last full audit pass finished.",
    multiprocess_mode="livemax",
)
AUDIT_PASS_DURATION = Gauge(
    "podgate_audit_last_full_pass_duration_seconds",
    "How long the last full audit pass took.",
    multiprocess_mode="livemax",
)
AUDIT_ERRORS = Counter(
    "podgate_audit_errors_total",
    "Audit passes or watch events that failed (API unavailable, ...), by stage.",
    ["stage"],
)
AUDIT_LEADER = Gauge(
    "podgate_audit_leader",
    "1 while this audit instance holds the Lease and is the active one.",
    multiprocess_mode="livemax",
)


class PendingCount:
    """Increments of one counter or gauge child, kept until `Pending.flush`.
    Like PendingObservations, updated only while holding `Pending.lock`."""

    __slots__ = ("child", "value")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def take(self) -> Callable[[], None] | None:
        """Reset, and return what adds the taken value to the collector."""
        value, self.value = self.value, 0.0
        if not value:
            return None
        # a gauge takes the net change, negative or not
        return functools.partial(self.child.inc, value)


class PendingObservations:
    """Observations of one histogram child, counted per bucket until `Pending.flush`.

    The flush adds the counts to the child's bucket and sum values (the
    attributes its own `observe` updates, unchanged since prometheus_client
    0.1); test_metrics compares the exposition with direct observations so
    a change there fails a test, not a scrape.
    """

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        # the first bucket whose bound is >= amount, as Histogram.observe finds it
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def take(self) -> Callable[[], None] | None:
        """Reset, and return what adds the taken observations to the collector."""
        if not any(self.counts):
            return None
        counts, total = self.counts, self.total
        self.counts, self.total = [0] * len(self.bounds), 0.0
        return functools.partial(self._add, counts, total)

    def _add(self, counts: list[int], total: float) -> None:
        self.child._sum.inc(total)
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


_P = TypeVar("_P", PendingCount, PendingObservations)


class Pending:
    """The per-admission metrics, counted in plain Python and added to their
    collectors by `flush`: on every heartbeat of a worker (twice a second),
    before every scrape of this process, and when a worker stops.

    Updated directly, the collector updates of one admission (a counter and
    a histogram per policy, the request's own, the in-flight gauge) would
    each check their arguments, take a lock and, with several workers, write
    a memory-mapped file. Here an admission costs one lock and some
    additions; a flush, one update per label set that changed.

    Updates are made while holding `lock`, which `flush` takes too (the
    event loop records while the side port's thread may be flushing for a
    scrape), but only to take the pending values: the collectors are
    updated after it is released.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._all: list[PendingCount | PendingObservations] = []

    def counts(self, metric: Any) -> Callable[..., PendingCount]:
        return self._children(metric, PendingCount)

    def observations(self, metric: Any) -> Callable[..., PendingObservations]:
        return self._children(metric, PendingObservations)

    def _children(self, metric: Any, make: Callable[[Any], _P]) -> Callable[..., _P]:
        # `metric.labels(...)` memoised: the label sets are bounded, and the
        # lookup (argument checks, a lock) costs more than the update
        cache: dict[tuple[str, ...], _P] = {}

        def child(*labels: str) -> _P:
            found = cache.get(labels)
            if found is None:
                found = cache[labels] = make(metric.labels(*labels))
                self._all.append(found)
            return found

        return child

    def flush(self) -> None:
        with self.lock:
            taken = [each.take() for each in self._all]
        for add in taken:
            if add is not None:
                add()


pending = Pending()
requests = pending.counts(ADMISSION_REQUESTS)
duration = pending.observations(ADMISSION_DURATION)
in_flight = pending.counts(IN_FLIGHT)
policy_results = pending.counts(POLICY_RESULTS)
policy_duration = pending.observations(POLICY_DURATION)
_by_result: dict[tuple[str, str, str], tuple[PendingCount, PendingObservations]] = {}


def record_policy_results(results: Iterable[PolicyResult]) -> None:
    """Count every result and observe its duration (a skip took none), while
    holding `pending.lock`. One call per admission rather than two per
    policy, and one lookup per result: this runs for every policy of every
    admission."""
    for r in results:
        key = (r.policy, r.effective_action, r.outcome)
        pair = _by_result.get(key)
        if pair is None:
            pair = _by_result[key] = (policy_results(*key), policy_duration(r.policy))
        pair[0].inc()
        if r.outcome is not Outcome.SKIP:
            pair[1].observe(r.duration_s)


def kind_label(kind: object) -> str:
    """A bounded label value: the workload kinds as they are, anything else `other`."""
    return kind if isinstance(kind, str) and kind in POD_KINDS else "other"


def operation_label(operation: object) -> str:
    return operation if isinstance(operation, str) and operation in OPERATIONS else "other"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render() -> tuple[bytes, str]:
    """The exposition of this process, or of every worker in multiprocess mode."""
    pending.flush()  # this process's own admissions (one worker), up to now
    if multiprocess_dir():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a worker that exited (multiprocess mode)."""
    if multiprocess_dir():
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
