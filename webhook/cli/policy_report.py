"""`-o policyreport`: the results as wgpolicyk8s.io/v1alpha2 PolicyReports,
as `kyverno apply --policy-report` gives them, one per namespace.

Every result is in it, passes and skips too, so that a dashboard reading
PolicyReports (Policy Reporter) shows what was checked and not only what
failed. The stream is YAML a cluster with the CRD can apply; without
timestamps, so that the same manifests give the same report.
"""

from __future__ import annotations

from typing import Any

import yaml

from policies.config import Config
from policies.model import Action, Outcome, PolicyResult
from webhook.cli.check import Report, resource_of
from webhook.cli.manifests import Document

REPORT_NAME = "podgate-check"
_WEIGHT = {"fail": 0, "warn": 1, "error": 2, "skip": 3, "pass": 4}


def _result(result: PolicyResult) -> str:
    """pass, fail (would be refused), warn (warned or audited), error, skip."""
    if result.outcome is Outcome.FAIL:
        return "fail" if result.effective_action is Action.DENY else "warn"
    return str(result.outcome)


def to_policy_report(report: Report, config: Config) -> str:
    severities = {pid: str(p.meta.severity) for pid, p in config.registry.policies.items()}
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for checked, result in report.rows():
        resource = resource_of(checked)
        entry: dict[str, Any] = {
            "source": "podgate",
            "policy": result.policy,
            "result": _result(result),
            "severity": severities.get(result.policy, "high"),
            "message": result.message[:1024] if result.failed else result.reason,
            "resources": [{k: v for k, v in resource.as_dict().items() if v}],
        }
        source = checked.source
        if isinstance(source, Document):
            entry["properties"] = {"file": source.file, "line": str(source.line)}
        by_namespace.setdefault(resource.namespace or "default", []).append(entry)
    reports: list[dict[str, Any]] = []
    for namespace, results in sorted(by_namespace.items()):
        results.sort(key=lambda r: _WEIGHT[r["result"]])
        reports.append(
            {
                "apiVersion": "wgpolicyk8s.io/v1alpha2",
                "kind": "PolicyReport",
                "metadata": {"name": REPORT_NAME, "namespace": namespace},
                "summary": {key: sum(1 for r in results if r["result"] == key) for key in _WEIGHT},
                "results": results,
            }
        )
    return yaml.safe_dump_all(reports, sort_keys=False, width=10**6).rstrip("\n")
