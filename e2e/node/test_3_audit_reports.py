"""The background audit, as installed: Events and PolicyReports for what runs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import (
    allow_all_network_policy,
    apply,
    deployment,
    eventually,
    kubectl,
    kubectl_json,
    kubectl_ok,
)
from e2e.node.release import RELEASE, NodeRelease, create_namespace, delete_namespace

CRD = Path(__file__).with_name("policyreport-crd.yaml")
REPORT = "podgate-audit"


@pytest.fixture(scope="module")
def audited(release: NodeRelease) -> Iterator[str]:
    """A namespace in audit mode holding a Deployment that breaks the policies,
    admitted with warnings; then the audit restarted with PolicyReports on."""
    kubectl_ok("apply", "-f", str(CRD))
    kubectl_ok("wait", "--for=condition=Established", "crd/policyreports.wgpolicyk8s.io")
    namespace = f"e2e-audited-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace, {"podgate.dev/mode": "audit"})
    apply(allow_all_network_policy(namespace))
    legacy = deployment(
        "legacy", namespace, {"containers": [{"name": "app", "image": "legacy:1"}]}, 0
    )
    proc = apply(legacy)
    assert proc.returncode == 0, proc.stderr
    assert "[audit mode, would be denied]" in proc.stderr
    release.upgrade({"audit": {"policyReports": True}})
    yield namespace
    delete_namespace(namespace)


def _report(namespace: str) -> dict[str, Any] | None:
    proc = kubectl("get", "policyreport", REPORT, "-n", namespace, "-o", "json")
    if proc.returncode != 0:
        return None
    report: dict[str, Any] = json.loads(proc.stdout)
    return report if report.get("results") else None


def test_the_audit_writes_a_policy_report_for_the_namespace(
    release: NodeRelease, audited: str
) -> None:
    report = eventually(lambda: _report(audited), timeout=90)
    results = report["results"]
    assert {r["resources"][0]["name"] for r in results} == {"legacy"}
    failed = {r["policy"] for r in results if r["result"] == "fail"}
    assert {"require-probes", "require-image-digest", "require-non-root"} <= failed
    assert report["summary"]["fail"] == len([r for r in results if r["result"] == "fail"])


def test_the_audit_posts_events_on_what_it_found(release: NodeRelease, audited: str) -> None:
    def event() -> dict[str, Any] | None:
        for item in kubectl_json("get", "events", "-n", audited)["items"]:
            involved = item["involvedObject"]
            if (
                item.get("reportingComponent") == "podgate.dev/audit"
                and involved["name"] == "legacy"
            ):
                return dict(item)
        return None

    found = eventually(event, timeout=90)
    assert found["reason"] == "PolicyViolation"
    assert found["involvedObject"]["kind"] == "Deployment"
    # the audit pod that saw it first: this one, or the one before an upgrade
    assert found["reportingInstance"].startswith(f"{RELEASE}-audit-")
