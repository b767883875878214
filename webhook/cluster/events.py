"""Kubernetes Events: what `kubectl describe` and `kubectl get events` show."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook.cluster.client import REQUEST_TIMEOUT
from webhook.telemetry.events import ViolationEvent


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
