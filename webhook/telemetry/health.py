"""The plain-HTTP side port: /metrics, /healthz, /readyz.

It runs in the process that owns the listening socket (the only process with
one worker; the supervisor with several), on a thread and event loop of its
own (side_port.py), so a busy or stuck admission loop does not make the
probes hang. Workers report through
shared memory: a ready flag (server started and, with a cluster, caches
synced) and a heartbeat written by their event loop every second.

/readyz is false until every worker is ready and from SIGTERM on, so the
endpoint is taken out of the Service before the server stops. /healthz fails
when a worker's event loop has not ticked for `stall_after_s`: a loop that
blocks is a bug the kubelet should restart us for.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from webhook.telemetry import metrics
from webhook.telemetry.side_port import Route, SidePortServer


class Slots:
    """Per-worker ready flags and heartbeats, shared with spawned worker processes."""

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready: Any = ctx.RawArray("b", workers)
        self.beat: Any = ctx.RawArray("d", workers)  # time.monotonic() is system-wide on Linux
        # Set from SIGTERM on: every answer then closes its connection, so that
        # the API server, which keeps connections to a pod open after the pod
        # leaves the Service, reconnects to another one before this one stops.
        self.draining: Any = ctx.RawValue("b", 0)

    def __len__(self) -> int:
        return len(self.ready)

    def reset(self, index: int) -> None:
        self.ready[index] = 0
        self.beat[index] = 0.0


class Probes(Protocol):
    """What the side port answers on /readyz and /healthz: (ok, why)."""

    def readiness(self) -> tuple[bool, str]: ...

    def liveness(self) -> tuple[bool, str]: ...


class Health:
    def __init__(self, slots: Slots, *, stall_after_s: float = 10.0) -> None:
        self.slots = slots
        self.stall_after_s = stall_after_s
        self.terminating = threading.Event()

    def readiness(self) -> tuple[bool, str]:
        if self.terminating.is_set():
            return False, "shutting down"
        waiting = [i for i in range(len(self.slots)) if not self.slots.ready[i]]
        if waiting:
            return False, f"worker(s) {waiting} not ready (starting, or cluster cache not synced)"
        return self.liveness()

    def liveness(self) -> tuple[bool, str]:
        now = time.monotonic()
        stalled = [
            i
            for i in range(len(self.slots))
            if self.slots.beat[i] and now - self.slots.beat[i] > self.stall_after_s
        ]
        if stalled:
            return False, f"event loop of worker(s) {stalled} stalled"
        return True, "ok"


def routes(health: Probes) -> dict[str, Route]:
    def probe(check: Callable[[], tuple[bool, str]]) -> Route:
        def answer() -> tuple[int, bytes, str]:
            ok, why = check()
            return (200 if ok else 503), (why + "\n").encode(), "text/plain; charset=utf-8"

        return answer

    def scrape() -> tuple[int, bytes, str]:
        body, content_type = metrics.render()
        return 200, body, content_type

    liveness = probe(health.liveness)
    return {
        "/healthz": liveness,
        "/livez": liveness,
        "/readyz": probe(health.readiness),
        "/metrics": scrape,
    }


class HealthServer(SidePortServer):
    """/healthz, /livez, /readyz and /metrics on the side port (side_port.py
    says how many clients it serves, and for how long)."""

    def __init__(self, health: Probes, host: str, port: int) -> None:
        super().__init__(routes(health), host, port)
