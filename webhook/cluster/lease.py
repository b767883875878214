"""The Lease that keeps one audit instance active, as the API stores it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from webhook.cluster.client import api_exception, status_of


class LeaseStore(Protocol):
    """One Lease: read it, create it, replace it (False when another writer won)."""

    def get(self) -> dict[str, Any] | None: ...
    def create(self, body: dict[str, Any]) -> bool: ...
    def replace(self, body: dict[str, Any]) -> bool: ...


class KubeLeaseStore:
    def __init__(self, api_client: Any, namespace: str, name: str) -> None:
        from kubernetes import client

        self._api: Any = client.CoordinationV1Api(api_client)
        self.namespace, self.name = namespace, name

    def get(self) -> dict[str, Any] | None:
        try:
            response = self._api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False
            )
        except api_exception() as exc:
            if status_of(exc) == 404:
                return None
            raise
        lease: dict[str, Any] = json.loads(response.data)
        return lease

    def _write(self, call: Callable[[], Any]) -> bool:
        try:
            call()
        except api_exception() as exc:
            if status_of(exc) in (409, 422):  # resourceVersion changed, or created meanwhile
                return False
            raise
        return True

    def create(self, body: dict[str, Any]) -> bool:
        return self._write(lambda: self._api.create_namespaced_lease(self.namespace, body))

    def replace(self, body: dict[str, Any]) -> bool:
        return self._write(
            lambda: self._api.replace_namespaced_lease(self.name, self.namespace, body)
        )
