"""The pending metrics: what a flush adds must be what direct updates would have."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from policies.model import Action, Outcome, PolicyResult
from webhook.telemetry import metrics
from webhook.telemetry.metrics import ADMISSION_BUCKETS, Pending

# the bucket bounds themselves, values between them, below the first and past the last
SAMPLES = [0.0, 0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.0025, 0.5, 9.99, 10.0, 11.0, 3600.0]


def _exposition(registry: CollectorRegistry) -> list[str]:
    # `_created` lines carry the time each child was made; nothing else may differ
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("took_seconds", "t", ["webhook"], buckets=ADMISSION_BUCKETS,
                     registry=registry)  # fmt: skip


def test_flushed_observations_expose_as_direct_observations_do() -> None:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    expected = _histogram(direct)
    pending = Pending()
    observations = pending.observations(_histogram(batched))
    for value in SAMPLES:
        expected.labels("validate").observe(value)
        observations("validate").observe(value)
    expected.labels("mutate").observe(0.002)
    observations("mutate").observe(0.002)
    pending.flush()
    assert _exposition(batched) == _exposition(direct)
    # a second flush adds nothing; new observations add to what is there
    pending.flush()
    expected.labels("validate").observe(0.02)
    observations("validate").observe(0.02)
    pending.flush()
    assert _exposition(batched) == _exposition(direct)


def test_counts_reach_the_collector_only_on_flush() -> None:
    registry = CollectorRegistry()
    pending = Pending()
    requests = pending.counts(Counter("requests", "r", ["decision"], registry=registry))
    in_flight = pending.counts(Gauge("in_flight", "f", ["webhook"], registry=registry))
    requests("denied").inc()
    requests("denied").inc()
    requests("allowed").inc()
    in_flight("validate").inc()
    in_flight("validate").inc()
    in_flight("validate").dec()
    assert registry.get_sample_value("requests_total", {"decision": "denied"}) == 0
    pending.flush()
    assert registry.get_sample_value("requests_total", {"decision": "denied"}) == 2
    assert registry.get_sample_value("requests_total", {"decision": "allowed"}) == 1
    assert registry.get_sample_value("in_flight", {"webhook": "validate"}) == 1
    in_flight("validate").dec()
    pending.flush()
    assert registry.get_sample_value("in_flight", {"webhook": "validate"}) == 0


def test_the_same_labels_give_the_same_pending_child() -> None:
    pending = Pending()
    counts = pending.counts(Counter("c", "c", ["a"], registry=CollectorRegistry()))
    assert counts("x") is counts("x")
    assert counts("x") is not counts("y")


@pytest.mark.parametrize("flushes", [1, 200])
def test_updates_made_under_the_lock_survive_concurrent_flushes(flushes: int) -> None:
    registry = CollectorRegistry()
    pending = Pending()
    counts = pending.counts(Counter("n", "n", ["w"], registry=registry))
    observations = pending.observations(Histogram("h", "h", ["w"], registry=registry))
    per_thread = 20_000

    def record() -> None:
        for _ in range(per_thread):
            with pending.lock:
                counts("v").inc()
                observations("v").observe(0.01)

    threads = [threading.Thread(target=record) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(flushes):
        pending.flush()
    for thread in threads:
        thread.join()
    pending.flush()
    labels = {"w": "v"}
    assert registry.get_sample_value("n_total", labels) == 2 * per_thread
    assert registry.get_sample_value("h_count", labels) == 2 * per_thread
    assert registry.get_sample_value("h_sum", labels) == pytest.approx(2 * per_thread * 0.01)


def test_policy_results_are_counted_and_timed_but_skips_take_no_time() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def snapshot() -> tuple[float, ...]:
        return (
            value("podgate_policy_results_total", policy="t-pol", action="deny", result="fail"),
            value("podgate_policy_results_total", policy="t-pol", action="off", result="skip"),
            value("podgate_policy_duration_seconds_count", policy="t-pol"),
            value("podgate_policy_duration_seconds_bucket", policy="t-pol", le="0.0025"),
        )

    failed = PolicyResult("t-pol", Outcome.FAIL, Action.DENY, Action.DENY, duration_s=0.002)
    skipped = PolicyResult("t-pol", Outcome.SKIP, Action.DENY, Action.OFF, reason="offline")
    before = snapshot()
    with metrics.pending.lock:
        metrics.record_policy_results([failed, failed, skipped])
    assert snapshot() == before  # nothing before the flush
    metrics.pending.flush()
    assert [a - b for a, b in zip(snapshot(), before, strict=True)] == [2, 1, 2, 2]
