"""podgate's own Validating- and MutatingWebhookConfigurations."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from webhook.cluster.client import REQUEST_TIMEOUT, Conflict, NotFound, api_exception, status_of


class WebhookConfigs(Protocol):
    def set_ca_bundle(self, kind: str, name: str, ca_bundle: bytes) -> bool:
        """kind is `validating` or `mutating`; True when it changed. Conflict, NotFound."""
        ...

    def delete(self, kind: str, name: str) -> bool: ...


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
        except api_exception() as exc:
            if status_of(exc) == 404:
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
        except api_exception() as exc:
            if status_of(exc) in (409, 422):  # a failed `test` is a 422 on some versions
                raise Conflict(str(exc)) from exc
            raise
        return True

    def delete(self, kind: str, name: str) -> bool:
        """Delete the configuration; False when it did not exist."""
        _, _, delete = self._calls(kind)
        try:
            delete(name, _request_timeout=REQUEST_TIMEOUT)
        except api_exception() as exc:
            if status_of(exc) == 404:
                return False
            raise
        return True
