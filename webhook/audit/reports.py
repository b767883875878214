"""PolicyReports (wgpolicyk8s.io/v1alpha2), one per namespace, from the findings."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from webhook.audit.findings import Finding
from webhook.cluster.policy_reports import REPORT_NAME


def _policy_message(finding: Finding, policy: str) -> str:
    return dict(finding.messages).get(policy, "")[:1024]


def policy_reports(
    findings: Iterable[Finding],
    severities: Mapping[str, str],
    namespaces: Iterable[str] = (),
) -> dict[str, Any]:
    """One PolicyReport body per namespace with findings (never one per request),
    and an empty one for each of `namespaces` (those reported before) that has
    none any more, so that fixed or deleted objects leave its report."""
    by_namespace: dict[str, list[Finding]] = {ns: [] for ns in namespaces}
    for finding in findings:
        by_namespace.setdefault(finding.namespace, []).append(finding)
    reports: dict[str, Any] = {}
    for namespace, items in sorted(by_namespace.items()):
        results = [
            {
                "source": "podgate",
                "policy": policy,
                # fail: the object does not meet a policy podgate enforces (or
                # would, out of audit mode); warn: one it only advises
                "result": "fail" if policy in f.required else "warn",
                "severity": severities.get(policy, "medium"),
                "message": _policy_message(f, policy),
                "resources": [
                    {
                        "apiVersion": f.api_version,
                        "kind": f.kind,
                        "name": f.name,
                        "namespace": f.namespace,
                        "uid": f.uid,
                    }
                ],
                "timestamp": {"seconds": int(time.time()), "nanos": 0},
            }
            for f in items
            for policy, _ in f.failures
        ]
        reports[namespace] = {
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {
                "name": REPORT_NAME,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "podgate"},
            },
            "summary": {
                "fail": sum(1 for r in results if r["result"] == "fail"),
                "warn": sum(1 for r in results if r["result"] == "warn"),
                "pass": 0,
                "error": 0,
                "skip": 0,
            },
            "results": results,
        }
    return reports
