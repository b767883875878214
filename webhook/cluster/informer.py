"""One resource kept in memory by list+watch, in a daemon thread.

The watch resumes from the last resourceVersion, relists when the API
server says the version is gone (410), and reconnects with exponential
backoff and jitter after any other failure.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from webhook.cluster.client import REQUEST_TIMEOUT, api_exception, status_of

log = logging.getLogger("podgate.cluster")

NETWORK_POLICIES = "networkpolicies"
NAMESPACES = "namespaces"


class Gone(Exception):
    """The resourceVersion is too old to resume from (HTTP 410): relist."""


class ListWatch(Protocol):
    """List and watch one resource: the seam between the caches and the API."""

    resource: str

    def list(self) -> tuple[list[dict[str, Any]], str]:
        """Every object, and the resourceVersion to watch from."""
        ...

    def watch(self, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        """Open a watch (eagerly: returning means connected) and yield its events
        ({"type", "object"}); raises Gone for a 410."""
        ...


def _rv(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) and rv else None


class Informer:
    """Keeps one resource in memory via list+watch, in a daemon thread."""

    def __init__(
        self,
        source: ListWatch,
        replace: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
        *,
        watch_timeout_s: int = 300,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self._replace, self._apply = source, replace, apply
        self.watch_timeout_s = watch_timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synced = False  # listed at least once: the cache is complete
        self.connected = False  # a watch is open now
        self.broken_since: float | None = None  # when the last failure streak began
        self.last_ok = clock()
        self.relists = 0
        self.failures = 0

    @property
    def resource(self) -> str:
        return self.source.resource

    def age(self) -> float:
        """0 while a watch is open (the cache is current), else seconds since it was."""
        return 0.0 if self.connected else max(0.0, self._clock() - self.last_ok)

    def broken_for(self) -> float:
        return 0.0 if self.broken_since is None else self._clock() - self.broken_since

    def _ok(self) -> None:
        self.last_ok = self._clock()
        self.broken_since = None

    def _cycle(self, rv: str | None) -> str | None:
        """One list (if needed) and one watch until it ends; returns the rv to resume from."""
        if rv is None:
            items, rv = self.source.list()
            self._replace(items)
            self.relists += 1
            if not self.synced:
                log.info("cache synced", extra={"fields": {"resource": self.resource}})
            self.synced = True
            self._ok()
        stream = self.source.watch(rv, self.watch_timeout_s)
        self.connected = True
        self._ok()
        try:
            for event in stream:
                if self._stop.is_set():
                    break
                kind, obj = event.get("type"), event.get("object")
                if not isinstance(obj, dict):
                    continue
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(str(obj.get("message", "")))
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(kind, obj)
                rv = _rv(obj) or rv
                self.last_ok = self._clock()
        finally:
            self.connected = False
        self._ok()
        return rv

    def _run(self) -> None:
        rv: str | None = None
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                rv = self._cycle(rv)
                backoff = self.backoff_initial_s
            except Gone:
                log.info(
                    "watch expired (410); relisting", extra={"fields": {"resource": self.resource}}
                )
                rv = None
            except Exception as exc:
                self.failures += 1
                if self.broken_since is None:
                    self.broken_since = self._clock()
                delay = random.uniform(backoff / 2, backoff)
                log.warning(
                    "list/watch failed; retrying",
                    extra={
                        "fields": {
                            "resource": self.resource,
                            "error": str(exc)[:300],
                            "retry_in_s": round(delay, 2),
                        }
                    },
                )
                self._stop.wait(delay)
                backoff = min(self.backoff_max_s, backoff * 2)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"podgate-watch-{self.resource}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class KubeListWatch:
    """ListWatch over the real API, with raw JSON (no model deserialisation)."""

    _FUNCS = {
        NETWORK_POLICIES: ("NetworkingV1Api", "list_network_policy_for_all_namespaces"),
        NAMESPACES: ("CoreV1Api", "list_namespace"),
    }

    def __init__(self, api_client: Any, resource: str, page_size: int = 500) -> None:
        from kubernetes import client

        api_name, func_name = self._FUNCS[resource]
        self.resource = resource
        self._func = getattr(getattr(client, api_name)(api_client), func_name)
        self.page_size = page_size

    def list(self) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.page_size}
            if token:
                kwargs["_continue"] = token
            resp = self._func(_preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            body = json.loads(resp.data)
            items.extend(i for i in body.get("items") or [] if isinstance(i, dict))
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    def watch(self, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        from kubernetes.watch import watch as kube_watch

        iter_resp_lines: Any = kube_watch.iter_resp_lines
        try:
            resp = self._func(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_s,
                _preload_content=False,
                # a socket read timeout beyond the server's: notices a dead connection
                _request_timeout=(REQUEST_TIMEOUT, timeout_s + 30),
            )
        except api_exception() as exc:
            if status_of(exc) == 410:
                raise Gone(str(exc)) from exc
            raise

        def events() -> Iterator[dict[str, Any]]:
            try:
                for line in iter_resp_lines(resp):
                    if line and line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
            finally:
                resp.close()
                resp.release_conn()

        return events()
