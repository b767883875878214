"""`podgate audit --watch`: its probes fail when its loops stop ticking."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

from tests.audit.test_audit import FakeLeases
from webhook.audit.lease import LeaseElector
from webhook.audit.watch import Heartbeat
from webhook.telemetry.health import HealthServer


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_probes_fail_when_no_loop_ticks_and_metrics_are_served() -> None:
    now = [1000.0]
    heartbeat = Heartbeat(stale_s=60.0, clock=lambda: now[0])
    server = HealthServer(heartbeat, "127.0.0.1", 0)
    server.start()
    try:
        assert _get(server.port, "/healthz") == (200, "ok\n")
        now[0] += 61  # kopf's loop or the Lease wait is stuck
        code, body = _get(server.port, "/healthz")
        assert code == 503
        assert body.startswith("no heartbeat for 61s")
        assert _get(server.port, "/readyz")[0] == 503
        heartbeat.beat()
        assert _get(server.port, "/readyz") == (200, "ok\n")
        code, body = _get(server.port, "/metrics")
        assert code == 200
        assert "podgate_audit_leader" in body
        assert _get(server.port, "/anything")[0] == 404  # was 200 under prometheus' server
    finally:
        server.stop()


def test_waiting_for_the_lease_ticks_the_heartbeat() -> None:
    """On standby the Lease wait is the loop that must keep ticking."""
    store = FakeLeases()
    holder = LeaseElector(store, "holder", duration_s=3, clock=lambda: 1000.0)
    assert holder.try_acquire_or_renew()
    standby = LeaseElector(store, "standby", duration_s=3, clock=lambda: 1000.0)
    stop = threading.Event()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 3:
            stop.set()

    assert standby.wait_for_leadership(stop, on_tick=tick) is False  # stopped, never leader
    assert len(ticks) == 3
