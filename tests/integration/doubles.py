"""The cluster seams of a server that runs in a process of its own, driven from
the test's: list/watch sources and the Event sink, shared through
multiprocessing primitives (passed to the server's process when it is spawned)."""

from __future__ import annotations

import datetime as dt
import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from typing import Any

from webhook.cluster.cache import ClusterCache
from webhook.cluster.informer import NAMESPACES, NETWORK_POLICIES
from webhook.telemetry.events import ViolationEvent

_END = "end"


class SharedSource:
    """A ListWatch whose objects and watch events the test process drives.

    `forbid_reads()` makes every later list or watch fail and count itself in
    `refused_reads`: a server that has synced, and whose watch stays open,
    has no reason to read again, least of all while it answers a review.
    """

    def __init__(
        self,
        ctx: SpawnContext,
        resource: str,
        items: Sequence[dict[str, Any]],
        *,
        watch_idle_s: float | None = 0.2,
    ) -> None:
        self.resource = resource
        self.items = [dict(i) for i in items]
        self.watch_idle_s = watch_idle_s  # None: a watch never ends by itself
        self.list_gate = ctx.Event()
        self.list_gate.set()
        self.reads = ctx.Value("i", 0)
        self.refused_reads = ctx.Value("i", 0)
        self._forbidden = ctx.Event()
        self._events: Any = ctx.Queue()
        self._rv = ctx.Value("i", 1)

    # --- the server's side -------------------------------------------------------
    def _read(self) -> None:
        with self.reads.get_lock():
            self.reads.value += 1
        if self._forbidden.is_set():
            with self.refused_reads.get_lock():
                self.refused_reads.value += 1
            raise AssertionError(f"{self.resource} read after reads were forbidden")

    def list(self) -> tuple[list[dict[str, Any]], str]:
        self._read()
        self.list_gate.wait()
        return [dict(i) for i in self.items], str(self._rv.value)

    def watch(self, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        self._read()

        def events() -> Iterator[dict[str, Any]]:
            while True:
                try:
                    item = self._events.get(timeout=self.watch_idle_s)
                except queue.Empty:
                    return  # the API server ended the watch (timeoutSeconds)
                if item == _END:
                    return
                event: dict[str, Any] = item
                obj = event["object"]
                # kept for a relist, as the API server keeps what it sent
                name = obj["metadata"].get("name")
                self.items = [i for i in self.items if i["metadata"].get("name") != name]
                if event["type"] != "DELETED":
                    self.items.append(obj)
                yield event

        return events()

    # --- the test's side ---------------------------------------------------------
    def push(self, kind: str, obj: dict[str, Any]) -> None:
        with self._rv.get_lock():
            self._rv.value += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv.value)
        self._events.put({"type": kind, "object": obj})

    def forbid_reads(self) -> None:
        self._forbidden.set()


@dataclass
class FakeCluster:
    """NetworkPolicies and Namespaces, as the server's cluster cache lists and watches them."""

    network_policies: SharedSource
    namespaces: SharedSource

    def cache(self) -> ClusterCache:
        """The server's Context over these sources (made in the server's process)."""
        return ClusterCache(
            self.network_policies,
            self.namespaces,
            stale_after_s=60.0,
            watch_timeout_s=1,
            backoff_initial_s=0.05,
        )

    def forbid_reads(self) -> None:
        self.network_policies.forbid_reads()
        self.namespaces.forbid_reads()

    @property
    def reads(self) -> int:
        return int(self.network_policies.reads.value + self.namespaces.reads.value)

    @property
    def refused_reads(self) -> int:
        return int(self.network_policies.refused_reads.value + self.namespaces.refused_reads.value)


def fake_cluster(
    ctx: SpawnContext,
    namespaces: Sequence[dict[str, Any]] = (),
    policies: Sequence[dict[str, Any]] = (),
    *,
    watch_idle_s: float | None = 0.2,
) -> FakeCluster:
    return FakeCluster(
        SharedSource(ctx, NETWORK_POLICIES, policies, watch_idle_s=watch_idle_s),
        SharedSource(ctx, NAMESPACES, namespaces, watch_idle_s=watch_idle_s),
    )


class SharedSink:
    """An EventSink whose Events the test process reads from `created`."""

    def __init__(self, ctx: SpawnContext) -> None:
        self._sent: Any = ctx.Queue()
        self._count = ctx.Value("i", 0)
        self._received: list[ViolationEvent] = []

    def create(self, event: ViolationEvent, count: int, first: dt.datetime) -> str:
        with self._count.get_lock():
            self._count.value += 1
            name = f"event-{self._count.value}"
        self._sent.put(event)
        return name

    def update_count(self, namespace: str, name: str, count: int, last: dt.datetime) -> None:
        pass

    @property
    def created(self) -> list[ViolationEvent]:
        """Every Event the server has created so far (read in the test's process)."""
        while True:
            try:
                self._received.append(self._sent.get_nowait())
            except queue.Empty:
                return self._received

    def __getstate__(self) -> dict[str, Any]:
        return {"_sent": self._sent, "_count": self._count, "_received": []}
