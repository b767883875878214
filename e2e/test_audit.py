"""`podgate audit` against the real API server: what ran before the webhook did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

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


class Watcher:
    """`podgate audit --watch` as a process, its stderr kept to explain a failure."""

    def __init__(self, namespace: str, name: str, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"audit-watch-{name}.log"
        env = {**os.environ, "POD_NAMESPACE": namespace, "POD_NAME": name}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "webhook.cli", "audit", "--watch", "--kubeconfig",
                 os.environ["KUBECONFIG"], "--metrics-port", str(self.port),
                 "--resync-seconds", "5"],
                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, env=env,
            )  # fmt: skip

    def leader(self) -> float | None:
        """The leader gauge, or None while the metrics port is not up."""
        try:
            return scrape(self.port, "podgate_audit_leader")
        except OSError:
            return None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM; it must exit 0 (its log tail is the failure message)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-25:])
        assert code == 0, f"exit {code} after SIGTERM; its log ends:\n{tail}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_watch_mode_follows_changes_and_stops_cleanly(installed: Podgate, tmp_path: Path) -> None:
    ns = new_namespace("watch", labels={"podgate.dev/ignore": "true"})
    watcher = Watcher(ns, "e2e-audit", tmp_path)

    def violations() -> float:
        return scrape(
            watcher.port, "podgate_audit_violations", namespace=ns, policy="require-probes"
        )

    try:
        eventually(lambda: watcher.leader() == 1, timeout=60)
        # the probes answer for kopf's loop, which ticks while it leads
        assert _status(watcher.port, "/healthz") == 200
        assert _status(watcher.port, "/readyz") == 200
        assert _status(watcher.port, "/no-such-path") == 404
        legacy = deployment("legacy", ns, {"containers": [{"name": "app", "image": "app:1"}]})
        kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(legacy))
        eventually(lambda: violations() == 1, timeout=30)
        events = eventually(
            lambda: [e for e in policy_events(ns) if e["involvedObject"]["kind"] == "Deployment"]
        )
        assert events[0]["message"].startswith(f"Audit: Deployment {ns}/legacy would be denied")
        kubectl_ok("delete", "deployment", "legacy", "-n", ns)
        eventually(lambda: violations() == 0, timeout=30)
        watcher.stop()
        assert _lease_holder(ns) == "", "the Lease is handed back on a clean shutdown"
    finally:
        watcher.kill()
        kubectl("delete", "namespace", ns, "--wait=false")


def test_standby_and_a_leader_still_starting_stop_cleanly(
    installed: Podgate, tmp_path: Path
) -> None:
    """SIGTERM is a clean exit at every stage: a rollout stops replicas at any time."""
    ns = new_namespace("standby", labels={"podgate.dev/ignore": "true"})
    early = Watcher(ns, "early", tmp_path)
    leader: Watcher | None = None
    standby: Watcher | None = None
    try:
        # stopped the moment it leads, before kopf has started (its signal
        # handlers not yet in place): it must still hand the Lease back
        eventually(lambda: early.leader() == 1, timeout=60, step=0.05)
        early.stop()
        assert _lease_holder(ns) == ""
        leader = Watcher(ns, "first", tmp_path)
        eventually(lambda: leader is not None and leader.leader() == 1, timeout=60)
        standby = Watcher(ns, "second", tmp_path)
        eventually(lambda: standby is not None and standby.leader() == 0, timeout=60)
        eventually(lambda: standby is not None and _status(standby.port, "/readyz") == 200)
        standby.stop()
        assert _lease_holder(ns) == "first"
        leader.stop()
    finally:
        for watcher in (early, leader, standby):
            if watcher is not None:
                watcher.kill()
        kubectl("delete", "namespace", ns, "--wait=false")


def _lease_holder(namespace: str) -> str:
    return kubectl_ok(
        "get", "lease", "podgate-audit", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}"
    )


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
