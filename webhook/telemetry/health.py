"""The plain-HTTP side port: /metrics, /healthz, /readyz.

It runs in the process that owns the listening socket (the only process with
one worker; the supervisor with several), on a thread of its own, so a busy
or stuck event loop does not make the probes hang. Workers report through
shared memory: a ready flag (server started and, with a cluster, caches
synced) and a heartbeat written by their event loop every second.

/readyz is false until every worker is ready and from SIGTERM on, so the
endpoint is taken out of the Service before the server stops. /healthz fails
when a worker's event loop has not ticked for `stall_after_s`: a loop that
blocks is a bug the kubelet should restart us for.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from webhook.telemetry import metrics

log = logging.getLogger("podgate.health")


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


def _handler(health: Probes) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {}

    def probe(check: Callable[[], tuple[bool, str]]) -> Callable[[], tuple[int, bytes, str]]:
        def answer() -> tuple[int, bytes, str]:
            ok, why = check()
            return (200 if ok else 503), (why + "\n").encode(), "text/plain; charset=utf-8"

        return answer

    def scrape() -> tuple[int, bytes, str]:
        body, content_type = metrics.render()
        return 200, body, content_type

    routes["/healthz"] = probe(health.liveness)
    routes["/livez"] = routes["/healthz"]
    routes["/readyz"] = probe(health.readiness)
    routes["/metrics"] = scrape

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                code, body, content_type = 404, b"not found\n", "text/plain"
            else:
                try:
                    code, body, content_type = route()
                except Exception as exc:  # a scrape must never kill the thread
                    log.exception("health endpoint failed")
                    code, body, content_type = 500, f"{exc}\n".encode(), "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the admission log

    return Handler


class HealthServer:
    def __init__(self, health: Probes, host: str, port: int) -> None:
        self.server = ThreadingHTTPServer((host, port), _handler(health))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="podgate-health", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
