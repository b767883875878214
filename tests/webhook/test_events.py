"""The event recorder: aggregation, rate limit, drops; never blocking."""

from __future__ import annotations

import time

from policies.config import load_config
from policies.engine import evaluate
from policies.model import OFFLINE
from tests.integration import reviews as rv
from tests.integration.harness import metric
from tests.webhook.fakes import FakeSink, wait_for
from webhook.telemetry import metrics
from webhook.telemetry.events import EventRecorder, ObjectRef, ViolationEvent, events_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event(message: str = "Denied CREATE of Pod shop/web: require-x: bad") -> ViolationEvent:
    ref = ObjectRef("v1", "Namespace", "shop", "shop")
    return ViolationEvent("shop", ref, "Denied", ("require-x",), message)


def _scrape() -> str:
    return metrics.render()[0].decode()


def test_repeats_are_counted_not_resent() -> None:
    clock, sink = Clock(), FakeSink()
    rec = EventRecorder(sink, clock=clock, flush_s=30.0, window_s=600.0)
    rec.record([_event()] * 5)
    assert rec.drain() == 5
    assert len(sink.created) == 1
    rec.flush()
    assert sink.updates == []  # not yet: once per flush interval
    clock.now += 31
    rec.flush()
    assert sink.updates == [("shop", "event-1", 5)]
    rec.flush(force=True)
    assert sink.updates == [("shop", "event-1", 5)]  # nothing new to write
    clock.now += 600  # past the aggregation window: a new Event
    rec.record([_event()])
    rec.drain()
    assert len(sink.created) == 2


def test_full_queue_drops_and_counts_without_blocking() -> None:
    sink = FakeSink()
    rec = EventRecorder(sink, queue_size=3)  # not started: nothing drains the queue
    before = metric(_scrape(), "podgate_events_dropped_total", reason="queue_full")
    started = time.perf_counter()
    accepted = rec.record([_event(f"m{i}") for i in range(10)])
    assert time.perf_counter() - started < 0.05
    assert accepted == 3
    assert metric(_scrape(), "podgate_events_dropped_total", reason="queue_full") == before + 7


def test_rate_limit_drops_the_excess() -> None:
    clock, sink = Clock(), FakeSink()
    rec = EventRecorder(sink, qps=1.0, burst=2, clock=clock)
    before = metric(_scrape(), "podgate_events_dropped_total", reason="rate_limited")
    rec.record([_event(f"m{i}") for i in range(5)])
    rec.drain()
    assert len(sink.created) == 2
    assert metric(_scrape(), "podgate_events_dropped_total", reason="rate_limited") == before + 3
    clock.now += 1.0
    rec.record([_event("later")])
    rec.drain()
    assert len(sink.created) == 3


def test_api_failure_is_dropped_not_retried() -> None:
    sink = FakeSink()
    sink.fail = True
    rec = EventRecorder(sink)
    before = metric(_scrape(), "podgate_events_dropped_total", reason="api_error")
    rec.record([_event()])
    rec.drain()
    rec.flush(force=True)
    assert metric(_scrape(), "podgate_events_dropped_total", reason="api_error") == before + 1
    sink.fail = False
    rec.drain()
    assert sink.created == []  # nothing was kept for a retry


def test_slow_api_never_slows_record() -> None:
    sink = FakeSink()
    sink.delay = 0.2
    rec = EventRecorder(sink, queue_size=4)
    rec.start()
    try:
        started = time.perf_counter()
        for i in range(50):
            rec.record([_event(f"m{i}")])
        assert time.perf_counter() - started < 0.1
        wait_for(lambda: len(sink.created) >= 1)
    finally:
        rec.stop(timeout=2.0)


def test_events_for_create_and_update() -> None:
    config = load_config(None)
    bad = rv.deployment("web", "shop", rv.container(resources={}))
    decision = evaluate(bad, OFFLINE, config, mutate=False)
    created = events_for(decision, operation="CREATE", user="alice", obj=bad)
    assert len(created) == 1
    assert created[0].involved == ObjectRef("v1", "Namespace", "shop", "shop")
    assert created[0].message.startswith("Denied CREATE of Deployment shop/web by alice: ")
    assert "require-resources" in created[0].policies
    assert len(created[0].message) <= 1024
    stored = rv.persisted(bad)
    updated = events_for(decision, operation="UPDATE", user="alice", obj=stored)
    assert [e.involved.kind for e in updated] == ["Namespace", "Deployment"]
    assert updated[1].involved.uid == stored["metadata"]["uid"]
    fine = evaluate(rv.deployment(), OFFLINE, config, mutate=False)
    assert events_for(fine, operation="CREATE", user="a", obj=None) == []
