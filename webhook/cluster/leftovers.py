"""What `podgate cleanup` deletes besides the webhook configurations: the
objects podgate creates at run time, which Helm does not know."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from webhook.cluster.client import REQUEST_TIMEOUT, api_exception, status_of


class KubeLeftovers:
    """What `podgate cleanup` deletes besides the webhook configurations."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._core: Any = client.CoreV1Api(api_client)
        self._apps: Any = client.AppsV1Api(api_client)
        self._leases: Any = client.CoordinationV1Api(api_client)
        self._custom: Any = client.CustomObjectsApi(api_client)

    @staticmethod
    def _gone(call: Callable[[], Any]) -> bool:
        """Run a delete (or scale); False when the object was not there."""
        try:
            call()
        except api_exception() as exc:
            if status_of(exc) == 404:
                return False
            raise
        return True

    def scale_to_zero(self, namespace: str, deployment: str) -> bool:
        body = {"spec": {"replicas": 0}}
        return self._gone(
            lambda: self._apps.patch_namespaced_deployment_scale(
                deployment, namespace, body, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def pods_left(self, namespace: str, deployment: str) -> int:
        try:
            found = self._apps.read_namespaced_deployment(
                deployment, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except api_exception() as exc:
            if status_of(exc) == 404:
                return 0
            raise
        labels = found.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self._core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        )
        return len(pods.items)

    def delete_secret(self, namespace: str, name: str) -> bool:
        return self._gone(
            lambda: self._core.delete_namespaced_secret(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def delete_lease(self, namespace: str, name: str) -> bool:
        return self._gone(
            lambda: self._leases.delete_namespaced_lease(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        )

    def delete_policy_reports(self, name: str) -> list[str] | None:
        group, version, plural = "wgpolicyk8s.io", "v1alpha2", "policyreports"
        try:
            found = self._custom.list_cluster_custom_object(
                group, version, plural,
                label_selector="app.kubernetes.io/managed-by=podgate",
                _request_timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        except api_exception() as exc:
            if status_of(exc) == 404:
                return None
            raise
        deleted = []
        for item in found.get("items") or []:
            meta = item.get("metadata") or {}
            if meta.get("name") != name:
                continue
            namespace = str(meta.get("namespace"))
            if self._gone(
                functools.partial(
                    self._custom.delete_namespaced_custom_object,
                    group, version, namespace, plural, name, _request_timeout=REQUEST_TIMEOUT,
                )
            ):  # fmt: skip
                deleted.append(namespace)
        return deleted
