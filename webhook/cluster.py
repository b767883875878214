"""Everything that talks to a cluster: the NetworkPolicy/Namespace caches and
the kubernetes-client adapters behind the small protocols of events.py and
certs.py.

The caches are kept by list+watch in background threads and are only read on
the request path: admission makes no API call. The watch
resumes from the last resourceVersion, relists when the API server says the
version is gone (410), and reconnects with exponential backoff and jitter
after any other failure. While a cache has not synced, or its watch has been
broken for longer than `stale_after_s`, the Context reports UNSYNCED and the
engine caps cluster-dependent policies (never deny on stale data).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from policies.model import ClusterState, NetworkPolicyInfo, namespace_entry
from policies.network_policy import network_policy_info
from webhook.certs import Conflict, NotFound, SecretData
from webhook.telemetry import metrics
from webhook.telemetry.events import ViolationEvent

log = logging.getLogger("podgate.cluster")

NETWORK_POLICIES = "networkpolicies"
NAMESPACES = "namespaces"
REQUEST_TIMEOUT = 10.0


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


class ClusterCache:
    """The Context of the webhook: NetworkPolicies and Namespace labels from watches."""

    def __init__(
        self,
        network_policies: ListWatch,
        namespaces: ListWatch,
        *,
        stale_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        **informer_options: Any,
    ) -> None:
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        # Readers (executor threads) only ever see whole replaced values.
        self._policies: dict[str, dict[str, NetworkPolicyInfo]] = {}
        self._policy_view: dict[str, tuple[NetworkPolicyInfo, ...]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self.informers = (
            Informer(network_policies, self._replace_policies, self._apply_policy,
                     clock=clock, **informer_options),
            Informer(namespaces, self._replace_namespaces, self._apply_namespace,
                     clock=clock, **informer_options),
        )  # fmt: skip

    # --- Context ----------------------------------------------------------------
    @property
    def cluster_state(self) -> ClusterState:
        for informer in self.informers:
            if not informer.synced or informer.broken_for() > self.stale_after_s:
                return ClusterState.UNSYNCED
        return ClusterState.SYNCED

    def network_policies(self, namespace: str) -> Sequence[NetworkPolicyInfo]:
        return self._policy_view.get(namespace, ())

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._labels.get(namespace)

    # --- lifecycle ----------------------------------------------------------------
    @property
    def synced(self) -> bool:
        """Every cache has listed once: readiness."""
        return all(i.synced for i in self.informers)

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()

    def update_metrics(self) -> None:
        for informer in self.informers:
            healthy = informer.synced and informer.broken_for() <= self.stale_after_s
            metrics.CACHE_SYNCED.labels(informer.resource).set(1 if healthy else 0)
            metrics.CACHE_AGE.labels(informer.resource).set(informer.age())

    # --- stores ---------------------------------------------------------------------
    def _replace_policies(self, items: list[dict[str, Any]]) -> None:
        fresh: dict[str, dict[str, NetworkPolicyInfo]] = {}
        for obj in items:
            info = network_policy_info(obj, "default")
            fresh.setdefault(info.namespace, {})[info.name] = info
        with self._lock:
            self._policies = fresh
            self._policy_view = {ns: tuple(p.values()) for ns, p in fresh.items()}

    def _apply_policy(self, kind: str, obj: dict[str, Any]) -> None:
        info = network_policy_info(obj, "default")
        with self._lock:
            in_ns = dict(self._policies.get(info.namespace, {}))
            if kind == "DELETED":
                in_ns.pop(info.name, None)
            else:
                in_ns[info.name] = info
            self._policies[info.namespace] = in_ns
            self._policy_view[info.namespace] = tuple(in_ns.values())

    def _replace_namespaces(self, items: list[dict[str, Any]]) -> None:
        fresh = dict(e for e in map(namespace_entry, items) if e is not None)
        with self._lock:
            self._labels = fresh

    def _apply_namespace(self, kind: str, obj: dict[str, Any]) -> None:
        entry = namespace_entry(obj)
        if entry is None:
            return
        with self._lock:
            labels = dict(self._labels)
            if kind == "DELETED":
                labels.pop(entry[0], None)
            else:
                labels[entry[0]] = entry[1]
            self._labels = labels


# --- the kubernetes client ------------------------------------------------------------


def in_cluster() -> bool:
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
    )


def connect(kubeconfig: str | None, *, fallback_default: bool = False) -> Any | None:
    """An ApiClient from --kubeconfig, else in-cluster config, else (only when
    `fallback_default`) the default kubeconfig; None when there is no cluster."""
    from kubernetes import client
    from kubernetes import config as kube_config

    # the client's own annotations are partial; it is used through Any here
    config: Any = kube_config
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    if in_cluster():
        config.load_incluster_config()
        return client.ApiClient()
    if fallback_default:
        return config.new_client_from_config()
    return None


def _api_exception() -> type[Exception]:
    from kubernetes.client.exceptions import ApiException

    exc: type[Exception] = ApiException
    return exc


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


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
        except _api_exception() as exc:
            if _status(exc) == 410:
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


def cluster_cache(api_client: Any, *, stale_after_s: float) -> ClusterCache:
    return ClusterCache(
        KubeListWatch(api_client, NETWORK_POLICIES),
        KubeListWatch(api_client, NAMESPACES),
        stale_after_s=stale_after_s,
    )


def _ts(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeEventSink:
    """core/v1 Events (what `kubectl describe` and `kubectl get events` show)."""

    def __init__(
        self, api_client: Any, instance: str, component: str = "podgate.dev/webhook"
    ) -> None:
        from kubernetes import client

        self._api: Any = client.CoreV1Api(api_client)
        self.instance, self.component = instance, component

    def create(self, event: ViolationEvent, count: int, first: dt.datetime) -> str:
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{event.involved.name}.podgate-",
                "namespace": event.namespace,
                "annotations": {"podgate.dev/policies": ",".join(event.policies)},
            },
            "involvedObject": event.involved.as_dict(),
            "reason": "PolicyViolation",
            "message": event.message,
            "type": "Warning",
            "action": event.action,
            "count": count,
            "firstTimestamp": _ts(first),
            "lastTimestamp": _ts(first),
            "source": {"component": "podgate"},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        created = self._api.create_namespaced_event(
            event.namespace, body, _request_timeout=REQUEST_TIMEOUT
        )
        return str(created.metadata.name)

    def update_count(self, namespace: str, name: str, count: int, last: dt.datetime) -> None:
        self._api.patch_namespaced_event(
            name,
            namespace,
            {"count": count, "lastTimestamp": _ts(last)},
            _request_timeout=REQUEST_TIMEOUT,
        )


class KubeSecretStore:
    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._api: Any = client.CoreV1Api(api_client)

    def get(self, namespace: str, name: str) -> SecretData | None:
        import base64

        try:
            resp = self._api.read_namespaced_secret(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except _api_exception() as exc:
            if _status(exc) == 404:
                return None
            raise
        body = json.loads(resp.data)
        data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
        return SecretData(data=data, resource_version=str(body["metadata"]["resourceVersion"]))

    def _body(self, namespace: str, name: str, data: Mapping[str, bytes], rv: str | None) -> Any:
        import base64

        meta: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "podgate"},
        }
        if rv:
            meta["resourceVersion"] = rv
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": meta,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }

    def create(self, namespace: str, name: str, data: Mapping[str, bytes]) -> None:
        try:
            self._api.create_namespaced_secret(
                namespace, self._body(namespace, name, data, None), _request_timeout=REQUEST_TIMEOUT
            )
        except _api_exception() as exc:
            if _status(exc) == 409:
                raise Conflict(str(exc)) from exc
            raise

    def replace(
        self, namespace: str, name: str, data: Mapping[str, bytes], resource_version: str
    ) -> None:
        try:
            self._api.replace_namespaced_secret(
                name,
                namespace,
                self._body(namespace, name, data, resource_version),
                _request_timeout=REQUEST_TIMEOUT,
            )
        except _api_exception() as exc:
            if _status(exc) == 409:
                raise Conflict(str(exc)) from exc
            if _status(exc) == 404:
                raise NotFound(str(exc)) from exc
            raise


class KubeWebhookConfigs:
    """caBundle patching and removal of the (Validating|Mutating)WebhookConfigurations."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._api: Any = client.AdmissionregistrationV1Api(api_client)

    def _calls(
        self, kind: str
    ) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        suffix = f"{kind}_webhook_configuration"
        return (
            getattr(self._api, f"read_{suffix}"),
            getattr(self._api, f"patch_{suffix}"),
            getattr(self._api, f"delete_{suffix}"),
        )

    def set_ca_bundle(self, kind: str, name: str, ca_bundle: bytes) -> bool:
        """Set caBundle on every webhook of the configuration; True if anything changed.

        A JSON Patch with a `test` of the resourceVersion: when another replica
        changed the object in between, the patch fails (Conflict) and is redone.
        """
        import base64

        read, patch, _ = self._calls(kind)
        try:
            resp = read(name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        except _api_exception() as exc:
            if _status(exc) == 404:
                raise NotFound(f"{kind} webhook configuration {name} not found") from exc
            raise
        body = json.loads(resp.data)
        wanted = base64.b64encode(ca_bundle).decode()
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": body["metadata"]["resourceVersion"]},
        ]  # fmt: skip
        for index, hook in enumerate(body.get("webhooks") or []):
            if (hook.get("clientConfig") or {}).get("caBundle") != wanted:
                ops.append(
                    {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle",
                     "value": wanted}
                )  # fmt: skip
        if len(ops) == 1:
            return False
        try:
            patch(name, ops, _request_timeout=REQUEST_TIMEOUT)
        except _api_exception() as exc:
            if _status(exc) in (409, 422):  # a failed `test` is a 422 on some versions
                raise Conflict(str(exc)) from exc
            raise
        return True

    def delete(self, kind: str, name: str) -> bool:
        """Delete the configuration; False when it did not exist."""
        _, _, delete = self._calls(kind)
        try:
            delete(name, _request_timeout=REQUEST_TIMEOUT)
        except _api_exception() as exc:
            if _status(exc) == 404:
                return False
            raise
        return True
