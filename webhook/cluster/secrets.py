"""The Secret that holds podgate's managed certificates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webhook.cluster.client import REQUEST_TIMEOUT, Conflict, NotFound, api_exception, status_of


@dataclass(frozen=True)
class SecretData:
    data: Mapping[str, bytes]
    resource_version: str


class SecretStore(Protocol):
    def get(self, namespace: str, name: str) -> SecretData | None: ...

    def create(self, namespace: str, name: str, data: Mapping[str, bytes]) -> None:
        """Raises Conflict when it exists already."""
        ...

    def replace(
        self, namespace: str, name: str, data: Mapping[str, bytes], resource_version: str
    ) -> None:
        """Raises Conflict when the resourceVersion is not current."""
        ...


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
        except api_exception() as exc:
            if status_of(exc) == 404:
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
        except api_exception() as exc:
            if status_of(exc) == 409:
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
        except api_exception() as exc:
            if status_of(exc) == 409:
                raise Conflict(str(exc)) from exc
            if status_of(exc) == 404:
                raise NotFound(str(exc)) from exc
            raise
