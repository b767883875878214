"""Memory of `podgate audit` on a cluster with many Pods. Prints JSON; not a test.

    eval "$(e2e/cluster.sh env)"      # a cluster to fill: the e2e control plane
    python bench/audit_memory.py [--pods 10000] [--watch-seconds 60]

Creates `--pods` Pods (half bare, half from Deployments, so the audit both
evaluates and skips owned Pods), then measures, in the same run:

* the baseline: a Python process that only imports what the audit imports;
* the one-shot `podgate audit`: its peak RSS (getrusage of the child);
* `podgate audit --watch`: RSS sampled until its first full pass has finished
  and for `--watch-seconds` after, i.e. with every Pod delivered by kopf's
  watch and the periodic pass over all of them.

The Pods stay Pending (no kubelet) and are deleted at the end with their
namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PER_NAMESPACE = 1000


def kubectl(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def pod(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
    }


def fill(prefix: str, pods: int) -> list[str]:
    """Namespaces holding `pods` Pods: bare ones, and ReplicaSet-owned ones."""
    from kubernetes import client, config

    kube_config: Any = config
    kube_config.load_kube_config()
    core: Any = client.CoreV1Api()
    namespaces = [f"{prefix}-{i}" for i in range(max(1, pods // PER_NAMESPACE))]
    bare_per_ns = PER_NAMESPACE // 2
    for ns in namespaces:
        kubectl("create", "namespace", ns)
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "bench", "namespace": ns},
            "spec": {"replicas": PER_NAMESPACE - bare_per_ns,
                     "selector": {"matchLabels": {"app": "owned"}},
                     "template": {"metadata": {"labels": {"app": "owned"}},
                                  "spec": pod("x", ns)["spec"]}},
        }  # fmt: skip
        kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the ServiceAccount admission plugin needs it
        if all(_has_default_sa(core, ns) for ns in namespaces):
            break
        time.sleep(0.5)
    jobs = [(f"bare-{i}", ns) for ns in namespaces for i in range(bare_per_ns)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda job: core.create_namespaced_pod(job[1], pod(*job)), jobs))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        count = sum(len(core.list_namespaced_pod(ns, limit=2000).items) for ns in namespaces)
        if count >= len(namespaces) * PER_NAMESPACE:
            break
        time.sleep(5)
    return namespaces


def _has_default_sa(core: Any, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except Exception:
        return False
    return True


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_PEAK = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def peak_rss_mb(cmd: list[str]) -> tuple[float, int]:
    """Peak RSS of a command, measured by a parent of its own (so no other child
    of this script, kubectl say, counts), and its exit code."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    return int(out[0]) / 1024, int(out[1])


def baseline_mb() -> float:
    code = (
        "import webhook.audit.watch, webhook.audit, webhook.cli, kopf, kubernetes; "
        "import policies.plugins as p; p.builtin_registry()"
    )
    return peak_rss_mb([sys.executable, "-c", code])[0]


def one_shot_mb(kubeconfig: str) -> tuple[float, float]:
    start = time.monotonic()
    mb, code = peak_rss_mb(
        [sys.executable, "-m", "webhook.cli", "audit", "--kubeconfig", kubeconfig, "-o", "json"]
    )
    if code not in (0, 1):
        raise RuntimeError(f"podgate audit exited {code}")
    return mb, time.monotonic() - start


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def watch_mb(kubeconfig: str, seconds: float) -> dict[str, Any]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "POD_NAMESPACE": "default", "POD_NAME": "bench-audit"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "audit",
            "--watch",
            "--kubeconfig",
            kubeconfig,
            "--metrics-port",
            str(port),
            "--resync-seconds",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    first_pass: float | None = None
    try:
        while True:
            now = time.monotonic() - started
            samples.append((round(now, 1), round(rss_mb(proc.pid), 1)))
            if (
                first_pass is None
                and (metric(port, "podgate_audit_last_full_pass_timestamp_seconds") or 0) > 0
            ):
                first_pass = now
            if first_pass is not None and now > first_pass + seconds:
                break
            if now > 900 or proc.poll() is not None:
                break
            time.sleep(1)
        violations = metric(port, "podgate_audit_violations")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    after_pass = [mb for t, mb in samples if first_pass is not None and t >= first_pass]
    return {
        "first_full_pass_s": round(first_pass, 1) if first_pass else None,
        "rss_mb_at_first_full_pass": after_pass[0] if after_pass else None,
        "rss_mb_at_end": samples[-1][1],
        "rss_mb_peak": max(mb for _, mb in samples),
        "some_violation_gauge_value": violations,
        "samples": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--watch-seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="leave the Pods for another run")
    parser.add_argument("--reuse", metavar="PREFIX", help="measure the Pods a --keep run left")
    args = parser.parse_args()
    kubeconfig = os.environ["KUBECONFIG"]
    started = time.monotonic()
    if args.reuse:
        listed = kubectl("get", "namespaces", "-o", "name").split()
        namespaces = [n.removeprefix("namespace/") for n in listed if args.reuse in n]
    else:
        namespaces = fill(f"bench-audit-{uuid.uuid4().hex[:5]}", args.pods)
    filled_s = time.monotonic() - started
    try:
        base = baseline_mb()
        once, once_s = one_shot_mb(kubeconfig)
        watch = watch_mb(kubeconfig, args.watch_seconds)
    finally:
        if not args.keep:
            for ns in namespaces:
                kubectl("delete", "namespace", ns, "--wait=false")
    print(
        json.dumps(
            {
                "pods": len(namespaces) * PER_NAMESPACE,
                "namespaces": namespaces if args.keep else len(namespaces),
                "fill_seconds": round(filled_s),
                "baseline_import_rss_mb": round(base, 1),
                "one_shot_audit": {
                    "peak_rss_mb": round(once, 1),
                    "seconds": round(once_s, 1),
                    "over_baseline_ratio": round(once / base, 2),
                },
                "watch_audit": watch,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
