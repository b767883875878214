"""`podgate audit` against the real API server: what ran before the webhook did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import yaml

from e2e.conftest import (
    ROOT,
    Podgate,
    bad_pod,
    deployment,
    eventually,
    free_port,
    kubectl,
    kubectl_ok,
    new_namespace,
    policy_events,
    scrape,
)


def podgate_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "audit", "--kubeconfig", os.environ["KUBECONFIG"],
         *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip


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
        proc = podgate_audit("--namespace", ns, "-o", "json")
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
        text = podgate_audit("--namespace", ns)
        assert f"Deployment {ns}/legacy" in text.stdout
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")


def test_watch_mode_follows_changes_and_stops_cleanly(installed: Podgate) -> None:
    ns = new_namespace("watch", labels={"podgate.dev/ignore": "true"})
    port = free_port()
    env = {**os.environ, "POD_NAMESPACE": ns, "POD_NAME": "e2e-audit"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "audit", "--watch", "--kubeconfig",
         os.environ["KUBECONFIG"], "--metrics-port", str(port), "--resync-seconds", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
    )  # fmt: skip

    def violations() -> float:
        return scrape(port, "podgate_audit_violations", namespace=ns, policy="require-probes")

    try:
        eventually(lambda: _up(port) and scrape(port, "podgate_audit_leader") == 1, timeout=60)
        # the probes answer for kopf's loop, which ticks while it leads
        assert _status(port, "/healthz") == 200
        assert _status(port, "/readyz") == 200
        assert _status(port, "/no-such-path") == 404
        legacy = deployment("legacy", ns, {"containers": [{"name": "app", "image": "app:1"}]})
        kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(legacy))
        eventually(lambda: violations() == 1, timeout=30)
        events = eventually(
            lambda: [e for e in policy_events(ns) if e["involvedObject"]["kind"] == "Deployment"]
        )
        assert events[0]["message"].startswith(f"Audit: Deployment {ns}/legacy would be denied")
        kubectl_ok("delete", "deployment", "legacy", "-n", ns)
        eventually(lambda: violations() == 0, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        holder = kubectl_ok(
            "get", "lease", "podgate-audit", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}"
        )
        assert holder == "", "the Lease is handed back on a clean shutdown"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kubectl("delete", "namespace", ns, "--wait=false")


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _up(port: int) -> bool:
    try:
        scrape(port, "podgate_audit_leader")
    except OSError:
        return False
    return True
