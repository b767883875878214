"""The webhook's Context: NetworkPolicies and Namespace labels from watches.

Only memory is read while a review is answered. While a cache has not
synced, or its watch has been broken for longer than `stale_after_s`, the
Context reports UNSYNCED and the engine caps cluster-dependent policies
(never deny on stale data).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies.model import ClusterState, NetworkPolicyInfo, namespace_entry
from policies.network_policy import network_policy_info
from webhook.cluster.informer import (
    NAMESPACES,
    NETWORK_POLICIES,
    Informer,
    KubeListWatch,
    ListWatch,
)
from webhook.telemetry import metrics


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


def cluster_cache(api_client: Any, *, stale_after_s: float) -> ClusterCache:
    return ClusterCache(
        KubeListWatch(api_client, NETWORK_POLICIES),
        KubeListWatch(api_client, NAMESPACES),
        stale_after_s=stale_after_s,
    )
