"""AdmissionReview documents as the API server sends them.

Objects carry what a real request carries after defaulting: managedFields,
creationTimestamp/uid on UPDATE, userInfo with groups and extra, the request
options, requestKind/requestResource, and oldObject on UPDATE and DELETE.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

DIGEST = "sha256:" + "a" * 64
PLURALS = {
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "ConfigMap": "configmaps",
}
OPTIONS = {
    "CREATE": "CreateOptions",
    "UPDATE": "UpdateOptions",
    "DELETE": "DeleteOptions",
}


def container(name: str = "web", *, image: str | None = None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "image": image or f"registry.example.com/shop/{name}@{DIGEST}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    base.update(extra)
    return base


def _managed_fields(api_version: str) -> list[dict[str, Any]]:
    return [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": api_version,
            "time": "2026-11-28T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:annotations": {".": {}}, "f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {}}}}},
            },
        }
    ]


def pod_spec(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "containers": list(containers) or [container()],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "schedulerName": "default-scheduler",
    }


def deployment(
    name: str = "web",
    namespace: str = "shop",
    *containers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations or {}),
            "managedFields": _managed_fields("apps/v1"),
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels), "creationTimestamp": None},
                "spec": pod_spec(*containers),
            },
        },
    }


def pod(
    name: str = "web",
    namespace: str = "shop",
    *containers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {"app": name}),
            "annotations": dict(annotations or {}),
            "managedFields": _managed_fields("v1"),
        },
        "spec": pod_spec(*containers),
    }


def persisted(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as stored: uid, resourceVersion, creationTimestamp, generation."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    meta.update(
        uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{meta['namespace']}/{meta['name']}")),
        resourceVersion="48213",
        generation=1,
        creationTimestamp="2026-11-28T10:00:00Z",
    )
    return out


def review(
    obj: Any,
    *,
    operation: str = "CREATE",
    api_version: str = "admission.k8s.io/v1",
    dry_run: bool = False,
    sub_resource: str | None = None,
    old: Any = None,
    kind: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    uid: str | None = None,
    user: str = "kubernetes-admin",
) -> dict[str, Any]:
    source = obj if isinstance(obj, dict) else old if isinstance(old, dict) else {}
    kind = kind or source.get("kind", "Pod")
    group_version = source.get("apiVersion", "v1")
    group, _, version = group_version.rpartition("/")
    meta = source.get("metadata", {}) if isinstance(source, dict) else {}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": PLURALS.get(kind, "things")},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {
            "group": group,
            "version": version,
            "resource": PLURALS.get(kind, "things"),
        },
        "name": name if name is not None else meta.get("name", ""),
        "namespace": namespace if namespace is not None else meta.get("namespace", ""),
        "operation": operation,
        "userInfo": {
            "username": user,
            "uid": "aa0c8c7e-62c4-4a4b-9a5c-0f2b6c0d1e2f",
            "groups": ["kubeadm:cluster-admins", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=ab12"]},
        },
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": (
            {
                "kind": OPTIONS[operation],
                "apiVersion": "meta.k8s.io/v1",
                "fieldManager": "kubectl-client-side-apply",
                "fieldValidation": "Strict",
            }
            if operation in OPTIONS
            else None
        ),
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}
