"""The kinds the audit reads, and the pages it reads them in.

Pages of raw JSON from the API: no model deserialisation, whose Python
objects would cost far more memory and time for a large cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class AuditedKind:
    kind: str
    api_version: str
    plural: str
    api: str  # kubernetes.client API class
    list_all: str  # its list-for-all-namespaces method
    list_namespaced: str


# Owners before what they own: a workload is evaluated before the objects it creates.
AUDITED = (
    AuditedKind("CronJob", "batch/v1", "cronjobs", "BatchV1Api",
                "list_cron_job_for_all_namespaces", "list_namespaced_cron_job"),
    AuditedKind("Job", "batch/v1", "jobs", "BatchV1Api",
                "list_job_for_all_namespaces", "list_namespaced_job"),
    AuditedKind("Deployment", "apps/v1", "deployments", "AppsV1Api",
                "list_deployment_for_all_namespaces", "list_namespaced_deployment"),
    AuditedKind("StatefulSet", "apps/v1", "statefulsets", "AppsV1Api",
                "list_stateful_set_for_all_namespaces", "list_namespaced_stateful_set"),
    AuditedKind("DaemonSet", "apps/v1", "daemonsets", "AppsV1Api",
                "list_daemon_set_for_all_namespaces", "list_namespaced_daemon_set"),
    AuditedKind("ReplicaSet", "apps/v1", "replicasets", "AppsV1Api",
                "list_replica_set_for_all_namespaces", "list_namespaced_replica_set"),
    AuditedKind("ReplicationController", "v1", "replicationcontrollers", "CoreV1Api",
                "list_replication_controller_for_all_namespaces",
                "list_namespaced_replication_controller"),
    AuditedKind("Pod", "v1", "pods", "CoreV1Api",
                "list_pod_for_all_namespaces", "list_namespaced_pod"),
)  # fmt: skip
CONTEXT_KINDS = (
    AuditedKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", "NetworkingV1Api",
                "list_network_policy_for_all_namespaces", "list_namespaced_network_policy"),
    AuditedKind("Namespace", "v1", "namespaces", "CoreV1Api", "list_namespace", "list_namespace"),
)  # fmt: skip


class ClusterReader(Protocol):
    """The audit's only seam to the cluster: pages of raw objects."""

    def pages(
        self, kind: AuditedKind, namespace: str | None, page_size: int
    ) -> Iterator[list[dict[str, Any]]]: ...


class KubeClusterReader:
    """ClusterReader over the real API."""

    def __init__(self, api_client: Any, request_timeout: float = 60.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout

    def pages(
        self, kind: AuditedKind, namespace: str | None, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        from kubernetes import client

        api = getattr(client, kind.api)(self.api_client)
        func = getattr(api, kind.list_all)
        args: tuple[str, ...] = ()
        if namespace is not None and kind.kind == "Namespace":
            # one namespace's own labels: readable with a Role in it, unlike the list
            response = api.read_namespace(
                namespace, _preload_content=False, _request_timeout=self.request_timeout
            )
            yield [{"apiVersion": "v1", "kind": "Namespace", **json.loads(response.data)}]
            return
        if namespace is not None:
            func, args = getattr(api, kind.list_namespaced), (namespace,)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": page_size}
            if token:
                kwargs["_continue"] = token
            response = func(
                *args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs
            )
            body = json.loads(response.data)
            items = [i for i in body.get("items") or [] if isinstance(i, dict)]
            for item in items:  # list items carry no kind of their own
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
            yield items
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return
