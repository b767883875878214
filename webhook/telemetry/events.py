"""Kubernetes Events for policy violations, sent off the request path.

Admission must never wait on the API server for an Event. `record` only puts
the event on a bounded queue (dropping and counting it when the queue is
full); a background thread sends it. Repeats of an event seen recently are
aggregated: the count grows locally and is written back at most once per
flush interval, as the kubelet's event correlator does. API calls are
rate-limited by a token bucket; an event over the rate, or whose API call
fails, is dropped and counted, never retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from policies.model import Action, Decision
from webhook.telemetry import metrics

log = logging.getLogger("podgate.events")

REASON = "PolicyViolation"
MAX_MESSAGE = 1024  # events.k8s.io caps the note at 1 KB; core Events follow suit here
_VERBS = {Action.DENY: "Denied", Action.WARN: "Warned", Action.AUDIT: "Audited"}


def strongest_verb(actions: Iterable[Action]) -> str:
    """The Event's verb for a set of failures: Denied over Warned over Audited."""
    present = set(actions)
    return next((verb for action, verb in _VERBS.items() if action in present), "Audited")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
        }
        if self.uid:
            out["uid"] = self.uid
        return out


@dataclass(frozen=True, slots=True)
class ViolationEvent:
    namespace: str
    involved: ObjectRef
    action: str  # Denied, Warned, Audited
    policies: tuple[str, ...]
    message: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.namespace, self.involved.kind, self.involved.name, self.action, self.message)


class EventSink(Protocol):
    """Where events go: the Kubernetes API in production, a list in tests."""

    def create(self, event: ViolationEvent, count: int, first: dt.datetime) -> str:
        """Create the Event; returns its name (for later count updates)."""
        ...

    def update_count(self, namespace: str, name: str, count: int, last: dt.datetime) -> None: ...


def events_for(
    decision: Decision,
    *,
    operation: str,
    user: str,
    obj: Mapping[str, Any] | None,
) -> list[ViolationEvent]:
    """The events of one admission: one on the namespace, and one on the object
    when it exists already (an UPDATE; on CREATE it has no uid yet)."""
    recorded = decision.recorded
    ref = decision.resource
    if not recorded or not ref.namespace:
        return []
    verb = strongest_verb(r.effective_action for r in recorded)
    policies = tuple(sorted({r.policy for r in recorded}))
    lines = [line for r in recorded for line in r.lines()]
    by = f" by {user}" if user else ""
    text = f"{verb} {operation} of {ref}{by}: " + "; ".join(lines)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    namespace_ref = ObjectRef("v1", "Namespace", ref.namespace, ref.namespace)
    out = [ViolationEvent(ref.namespace, namespace_ref, verb, policies, text)]
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    uid = metadata.get("uid") if isinstance(metadata, Mapping) else None
    if operation == "UPDATE" and isinstance(uid, str) and uid and ref.name:
        target = ObjectRef(ref.api_version, ref.kind, ref.name, ref.namespace, uid)
        out.append(ViolationEvent(ref.namespace, target, verb, policies, text))
    return out


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._last = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class _Seen:
    name: str
    first: float
    first_wall: dt.datetime
    count: int = 1
    sent_count: int = 1
    last_flush: float = 0.0


_STOP = object()


class EventRecorder:
    def __init__(
        self,
        sink: EventSink,
        *,
        queue_size: int = 1024,
        qps: float = 5.0,
        burst: int = 25,
        window_s: float = 600.0,
        flush_s: float = 30.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.window_s, self.flush_s, self.cache_size = window_s, flush_s, cache_size
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._bucket = TokenBucket(qps, burst, clock)
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._thread: threading.Thread | None = None

    # --- the request side: never blocks -------------------------------------
    def record(self, events: Sequence[ViolationEvent]) -> int:
        """Queue events; returns how many were accepted (the rest are dropped)."""
        accepted = 0
        for event in events:
            try:
                self._queue.put_nowait(event)
                accepted += 1
            except queue.Full:
                metrics.EVENTS_DROPPED.labels("queue_full").inc()
        return accepted

    # --- the worker side ------------------------------------------------------
    def handle(self, event: ViolationEvent) -> None:
        now = self._clock()
        seen = self._seen.get(event.key)
        if seen is not None and now - seen.first < self.window_s:
            seen.count += 1
            self._seen.move_to_end(event.key)
            metrics.EVENTS_AGGREGATED.inc()
            return
        if not self._bucket.take():
            metrics.EVENTS_DROPPED.labels("rate_limited").inc()
            return
        wall = dt.datetime.now(dt.UTC)
        try:
            name = self.sink.create(event, 1, wall)
        except Exception as exc:
            metrics.EVENTS_DROPPED.labels("api_error").inc()
            log.warning(
                "could not create an Event; dropped",
                extra={"fields": {"namespace": event.namespace, "error": str(exc)[:300]}},
            )
            return
        metrics.EVENTS_SENT.inc()
        self._seen[event.key] = _Seen(name=name, first=now, first_wall=wall, last_flush=now)
        self._seen.move_to_end(event.key)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    def flush(self, *, force: bool = False) -> None:
        """Write back the counts of aggregated events, at most once per flush interval."""
        now = self._clock()
        for key, seen in list(self._seen.items()):
            if now - seen.first >= self.window_s and seen.count == seen.sent_count:
                del self._seen[key]
                continue
            if seen.count == seen.sent_count or (
                not force and now - seen.last_flush < self.flush_s
            ):
                continue
            if not self._bucket.take():
                return  # try again at the next flush; the count is not lost
            seen.last_flush = now
            try:
                self.sink.update_count(key[0], seen.name, seen.count, dt.datetime.now(dt.UTC))
            except Exception as exc:
                metrics.EVENTS_DROPPED.labels("api_error").inc()
                log.warning(
                    "could not update an Event's count",
                    extra={"fields": {"namespace": key[0], "error": str(exc)[:300]}},
                )
                seen.sent_count = seen.count  # not retried: the next repeat tries again
                continue
            seen.sent_count = seen.count

    def drain(self) -> int:
        """Handle everything queued now (tests, and the worker loop)."""
        handled = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return handled
            if item is _STOP:
                self._queue.put_nowait(_STOP)
                return handled
            assert isinstance(item, ViolationEvent)
            self.handle(item)
            handled += 1

    def _run(self) -> None:
        tick = min(1.0, self.flush_s)
        while True:
            try:
                item = self._queue.get(timeout=tick)
            except queue.Empty:
                self.flush()
                continue
            if item is _STOP:
                self.flush(force=True)
                return
            assert isinstance(item, ViolationEvent)
            try:
                self.handle(item)
            except Exception:  # the worker must outlive any bug in a sink
                log.exception("event worker error")
            self.flush()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="podgate-events", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued, within `timeout`; anything left is abandoned."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        self._thread = None
