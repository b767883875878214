"""The kubernetes client: connecting, and what its errors mean to podgate.

The cluster part is the only code that imports `kubernetes` (and `kopf`):
the server and the audit are handed its adapters, behind small protocols,
and the core never sees a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT = 10.0


class Conflict(Exception):
    """The object changed (or appeared) since it was read."""


class NotFound(Exception):
    pass


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


def api_exception() -> type[Exception]:
    from kubernetes.client.exceptions import ApiException

    exc: type[Exception] = ApiException
    return exc


def status_of(exc: Exception) -> int | None:
    """The HTTP status of an API error; None for any other error."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def api_error(exc: Exception) -> str:
    """An API error in one line: the API server's own message ("cronjobs.batch is
    forbidden: ...", "etcdserver: request is too large"), not the client's
    dump of HTTP headers."""
    status = getattr(exc, "status", None)
    if not status:
        return f"{type(exc).__name__}: {exc}"[:300]
    head = f"HTTP {status} {getattr(exc, 'reason', None) or ''}".strip()
    message = None
    body = getattr(exc, "body", None)
    if isinstance(body, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(body).get("message")
    return f"{head}: {message}" if message else head
