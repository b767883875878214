"""Fakes at the kube-client seam only: list/watch sources, the event sink, the
Secret store and the webhook configurations. Everything above them is real."""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from webhook.cluster.client import Conflict, NotFound
from webhook.cluster.secrets import SecretData
from webhook.telemetry.events import ViolationEvent

_END = object()


def wait_for(check: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class FakeSource:
    """A ListWatch whose list and watch are driven by the test."""

    def __init__(self, resource: str, items: list[dict[str, Any]] | None = None) -> None:
        self.resource = resource
        self.items = list(items or [])
        self.rv = 1
        self.list_gate = threading.Event()
        self.list_gate.set()
        self.list_calls = 0
        self.watch_calls: list[str] = []
        self.fail_lists = 0  # how many next list() calls raise
        self.fail_watches: list[BaseException] = []  # raised by the next watch() calls
        self._events: queue.Queue[object] = queue.Queue()

    def list(self) -> tuple[list[dict[str, Any]], str]:
        self.list_calls += 1
        self.list_gate.wait()
        if self.fail_lists:
            self.fail_lists -= 1
            raise ConnectionError("list failed")
        return [dict(i) for i in self.items], str(self.rv)

    def watch(self, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        self.watch_calls.append(resource_version)
        if self.fail_watches:
            raise self.fail_watches.pop(0)

        def events() -> Iterator[dict[str, Any]]:
            while True:
                try:
                    item = self._events.get(timeout=0.2)
                except queue.Empty:
                    return  # the server ended the watch (timeoutSeconds)
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, dict)
                yield item

        return events()

    def push(self, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        name = obj["metadata"].get("name")
        self.items = [i for i in self.items if i["metadata"].get("name") != name]
        if kind != "DELETED":
            self.items.append(obj)
        self._events.put({"type": kind, "object": obj})

    def expire(self) -> None:
        """The API server's answer to a too-old resourceVersion."""
        self._events.put({"type": "ERROR", "object": {"code": 410, "message": "too old"}})

    def break_stream(self) -> None:
        self._events.put(ConnectionResetError("connection reset"))


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(labels)}}


def network_policy(ns: str, name: str, match: dict[str, str] | None) -> dict[str, Any]:
    selector = {"matchLabels": match} if match else {}
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"]},
    }


class FakeSink:
    def __init__(self) -> None:
        self.created: list[ViolationEvent] = []
        self.updates: list[tuple[str, str, int]] = []
        self.fail = False
        self.delay = 0.0

    def create(self, event: ViolationEvent, count: int, first: dt.datetime) -> str:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("API unavailable")
        self.created.append(event)
        return f"event-{len(self.created)}"

    def update_count(self, namespace: str, name: str, count: int, last: dt.datetime) -> None:
        if self.fail:
            raise RuntimeError("API unavailable")
        self.updates.append((namespace, name, count))


class FakeSecrets:
    """A Secret store with resourceVersions, like the API server's."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], SecretData] = {}
        self._rv = 0
        self.before_write: Callable[[], None] | None = None  # simulates a concurrent writer
        self.writes = 0

    def _next(self) -> str:
        self._rv += 1
        return str(self._rv)

    def get(self, namespace: str, name: str) -> SecretData | None:
        return self.objects.get((namespace, name))

    def put(self, namespace: str, name: str, data: Mapping[str, bytes]) -> None:
        self.objects[(namespace, name)] = SecretData(dict(data), self._next())

    def create(self, namespace: str, name: str, data: Mapping[str, bytes]) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        if (namespace, name) in self.objects:
            raise Conflict("already exists")
        self.writes += 1
        self.put(namespace, name, data)

    def replace(
        self, namespace: str, name: str, data: Mapping[str, bytes], resource_version: str
    ) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        current = self.objects.get((namespace, name))
        if current is None:
            raise NotFound(name)
        if current.resource_version != resource_version:
            raise Conflict("resourceVersion changed")
        self.writes += 1
        self.put(namespace, name, data)


class FakeWebhooks:
    def __init__(self, existing: dict[tuple[str, str], int] | None = None) -> None:
        # (kind, name) -> number of webhooks in the configuration
        self.configs = dict(existing or {})
        self.bundles: dict[tuple[str, str], list[bytes]] = {}
        self.conflicts = 0  # the next set_ca_bundle calls that raise Conflict
        self.deleted: list[tuple[str, str]] = []

    def set_ca_bundle(self, kind: str, name: str, ca_bundle: bytes) -> bool:
        if (kind, name) not in self.configs:
            raise NotFound(name)
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("changed")
        wanted = [ca_bundle] * self.configs[(kind, name)]
        changed = self.bundles.get((kind, name)) != wanted
        self.bundles[(kind, name)] = wanted
        return changed

    def delete(self, kind: str, name: str) -> bool:
        if (kind, name) not in self.configs:
            return False
        del self.configs[(kind, name)]
        self.deleted.append((kind, name))
        return True
