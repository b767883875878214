"""One active audit per cluster: leader election on a coordination.k8s.io Lease."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable

from policies.views import as_mapping
from webhook.cluster.lease import LeaseStore
from webhook.telemetry import metrics

log = logging.getLogger("podgate.audit")

LEASE_NAME = os.environ.get("PODGATE_AUDIT_LEASE", "podgate-audit")  # the chart sets it


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
