"""PolicyReports (wgpolicyk8s.io/v1alpha2) as the API stores them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from webhook.cluster.client import api_error
from webhook.telemetry import metrics

log = logging.getLogger("podgate.audit")

REPORT_NAME = "podgate-audit"  # each namespace's PolicyReport (the chart's RBAC names it)


def write_policy_reports(api_client: Any, reports: Mapping[str, Any]) -> list[str]:
    """Write each namespace's report; one that fails (too large, forbidden, the
    namespace being deleted) does not keep the others from being written.
    Returns the namespaces whose report could not be written."""
    from kubernetes import client

    api: Any = client.CustomObjectsApi(api_client)
    failed: list[str] = []
    for namespace, body in reports.items():
        try:
            _write_policy_report(api, namespace, body)
        except Exception as exc:
            failed.append(namespace)
            metrics.AUDIT_ERRORS.labels("policy_reports").inc()
            log.warning(
                "could not write the PolicyReport of namespace %s: %s",
                namespace, api_error(exc),
            )  # fmt: skip
    return failed


def _write_policy_report(api: Any, namespace: str, body: dict[str, Any]) -> None:
    from kubernetes.client.exceptions import ApiException

    args = ("wgpolicyk8s.io", "v1alpha2", namespace, "policyreports")
    try:
        current = api.get_namespaced_custom_object(*args, REPORT_NAME)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        api.replace_namespaced_custom_object(*args, REPORT_NAME, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        if body["results"]:  # no report to empty (or no namespace any more): done
            api.create_namespaced_custom_object(*args, body)


def existing_policy_reports(api_client: Any) -> set[str]:
    """The namespaces that hold a report of ours: what an earlier leader wrote
    must be emptied too when its namespace is clean."""
    from kubernetes import client

    api: Any = client.CustomObjectsApi(api_client)
    try:
        listed = api.list_cluster_custom_object(
            "wgpolicyk8s.io", "v1alpha2", "policyreports",
            field_selector=f"metadata.name={REPORT_NAME}",
        )  # fmt: skip
    except Exception as exc:
        metrics.AUDIT_ERRORS.labels("policy_reports").inc()
        log.warning("could not list the PolicyReports written before: %s", api_error(exc))
        return set()
    return {
        str(item["metadata"]["namespace"])
        for item in listed.get("items") or []
        if (item.get("results") or []) and isinstance(item.get("metadata"), dict)
    }
