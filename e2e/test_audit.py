"""`podgate audit` against the real API server: what ran before the webhook did."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from e2e.conftest import (
    ROOT,
    Podgate,
    bad_pod,
    deployment,
    eventually,
    kubectl,
    kubectl_ok,
    new_namespace,
)


def test_audit_reports_pre_existing_violations_once_per_workload(installed: Podgate) -> None:
    # podgate.dev/ignore keeps the webhook away: this is what ran before podgate.
    ns = new_namespace("legacy", labels={"podgate.dev/ignore": "true"})
    try:
        legacy = deployment("legacy", ns, {"containers": [{"name": "app", "image": "app:1"}]})
        kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(legacy))
        kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(bad_pod("stray", ns)))
        eventually(
            lambda: (
                len(kubectl_ok("get", "pods", "-n", ns, "-l", "app=legacy", "-o", "name").split())
                == 2
            ),
            timeout=60,
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "webhook.cli",
                "audit",
                "--kubeconfig",
                os.environ["KUBECONFIG"],
                "--namespace",
                ns,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert proc.returncode == 1, proc.stderr
        report = json.loads(proc.stdout)
        failing = {
            (r["resource"]["kind"], r["resource"]["name"])
            for r in report["results"]
            if r["result"] == "fail"
        }
        assert failing == {("Deployment", "legacy"), ("Pod", "stray")}, failing
        probes = [
            r
            for r in report["results"]
            if r["policy"] == "require-probes" and r["resource"]["name"] == "legacy"
        ]
        assert 'container "app" has no livenessProbe' in probes[0]["message"]
        text = subprocess.run(
            [
                sys.executable,
                "-m",
                "webhook.cli",
                "audit",
                "--kubeconfig",
                os.environ["KUBECONFIG"],
                "--namespace",
                ns,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert f"Deployment {ns}/legacy" in text.stdout
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")
