"""API-server benchmark: the latency an admission webhook adds where users feel it.

Drives the real API server of `e2e/cluster.sh` with creates of Pods and
Deployments, server-side dry-run and real, at each `--concurrency`, first
with no webhook configured, then with each engine's webhooks (podgate on the
host, podgate on the node, Kyverno), in turns within each round so a slow
spell of the shared machine hits them alike. For every turn it reads the API
server's own histograms over the turn (a scrape before, one after):

- `apiserver_admission_webhook_admission_duration_seconds`: the time the API
  server spent calling each webhook, i.e. the latency the engine adds (mean
  exact; p50/p99 interpolated within the API server's coarse buckets);
- `apiserver_request_duration_seconds` of the creates themselves;

and reports requests/s and the writers' own latencies (mean, p50, p99, the
finest figure: with an engine minus without, in the same round), and CPU per
admission of the API server and of the engine, from /proc of their pids (a
pod's processes found by its cgroup).

The objects pass every policy (podgate's and the equivalent Kyverno ones),
so each is admitted, with the mutating webhook's defaults. Pods name a
scheduler that does not exist and Deployments are paused, so a real create
starts nothing else: no ReplicaSet, no scheduling, no kubelet.

    export PODGATE_E2E_DIR=/tmp/podgate-e2e-bench
    e2e/cluster.sh up && eval "$(e2e/cluster.sh env)"
    python bench/apiserver_bench.py --engines podgate-host
    e2e/cluster.sh node && e2e/cluster.sh image
    python bench/apiserver_bench.py --engines podgate-node podgate-host
    e2e/cluster.sh down

Prints one JSON document. A benchmark, not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import histograms  # noqa: E402
from bench.apiclient import Api, from_kubeconfig  # noqa: E402
from bench.engines import (  # noqa: E402
    Engine,
    PodgateOnHost,
    PodgateOnNode,
    Registration,
    component_pid,
    until,
)
from bench.kyverno import Kyverno  # noqa: E402
from bench.procs import cpu_seconds  # noqa: E402

NAMESPACE = "podgate-bench"
DIGEST = "sha256:" + "b2" * 32
WEBHOOK = "apiserver_admission_webhook_admission_duration_seconds"
REQUEST = "apiserver_request_duration_seconds"
# Where each kind is created, and how the API server labels its requests.
KINDS = {
    "pod": ("/api/v1/namespaces/{ns}/pods", "", "pods"),
    "deployment": ("/apis/apps/v1/namespaces/{ns}/deployments", "apps", "deployments"),
}


def pod_spec() -> dict[str, Any]:
    """Passes every policy; no cpu request, so the mutating webhook adds one."""
    return {
        "schedulerName": "podgate-bench-unscheduled",  # nothing will run it
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [
            {
                "name": "web",
                "image": f"registry.example.com/bench/web@{DIGEST}",
                "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                "livenessProbe": {"tcpSocket": {"port": 8080}},
                "readinessProbe": {"tcpSocket": {"port": 8080}},
            }
        ],
    }


def manifest(kind: str, name: str) -> dict[str, Any]:
    labels = {"app": "bench"}
    if kind == "pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": pod_spec(),
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "paused": True,  # the controller makes no ReplicaSet for a new paused one
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec()},
        },
    }


def failing_pod() -> bytes:
    """A Pod every engine refuses: a dry run of it tells whether webhooks answer."""
    pod = manifest("pod", "bench-probe")
    pod["spec"]["containers"][0] = {"name": "web", "image": "nginx:1.27"}
    return json.dumps(pod).encode()


# --- load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    kind: str
    dry_run: bool
    concurrency: int

    @property
    def key(self) -> str:
        return f"{self.kind}/{'dry-run' if self.dry_run else 'real'}/c{self.concurrency}"

    def path(self) -> str:
        path = KINDS[self.kind][0].format(ns=NAMESPACE)
        return path + ("?dryRun=All" if self.dry_run else "")


@dataclass
class Load:
    latencies: list[float]
    errors: int
    seconds: float
    first_error: str | None


async def drive(api: Api, cell: Cell, seconds: float, prefix: str) -> Load:
    """`cell.concurrency` writers, each on its own connection, creating back
    to back for `seconds`; each object has a name of its own."""
    conns = [await api.open() for _ in range(cell.concurrency)]
    path, names = cell.path(), itertools.count()
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    deadline = time.perf_counter() + seconds

    async def writer(conn: Any) -> None:
        nonlocal errors, first_error
        while time.perf_counter() < deadline:
            body = json.dumps(manifest(cell.kind, f"{prefix}-{next(names)}")).encode()
            t0 = time.perf_counter()
            status, answer = await conn.request("POST", path, body)
            latencies.append(time.perf_counter() - t0)
            if status != 201:
                errors += 1
                first_error = first_error or f"{status}: {answer[:300]!r}"

    start = time.perf_counter()
    await asyncio.gather(*(writer(c) for c in conns))
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return Load(latencies, errors, elapsed, first_error)


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


# --- one turn -----------------------------------------------------------------------------


@dataclass
class Sources:
    """What a turn reads before and after: the API server's metrics, and the
    CPU of the API server, etcd and the engine."""

    api: Api
    apiserver: int
    etcd: int
    engine_pids: Callable[[], list[int]]

    def cpu(self) -> dict[str, float]:
        return {
            "apiserver": cpu_seconds([self.apiserver]),
            "etcd": cpu_seconds([self.etcd]),
            "engine": cpu_seconds(self.engine_pids()),
        }

    def metrics(self) -> str:
        status, body = self.api.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode()


def measure(sources: Sources, cell: Cell, seconds: float, prefix: str) -> dict[str, Any]:
    # The scrapes stay outside the CPU window: metrics, CPU, load, CPU, metrics.
    metrics_before = sources.metrics()
    cpu_before = sources.cpu()
    load = asyncio.run(drive(sources.api, cell, seconds, prefix))
    cpu_after = sources.cpu()
    metrics_after = sources.metrics()
    done = max(1, len(load.latencies))
    group, resource = KINDS[cell.kind][1:]
    dry = "All" if cell.dry_run else ""

    def creates(labels: histograms.Labels) -> bool:
        return (
            labels.get("verb") == "POST"
            and labels.get("resource") == resource
            and labels.get("group") == group
            and labels.get("subresource") == ""
            and labels.get("dry_run") == dry
        )

    def window(name: str, where: Callable[[histograms.Labels], bool]) -> histograms.Histogram:
        return histograms.delta(
            histograms.read(metrics_after, name, where),
            histograms.read(metrics_before, name, where),
        )

    def admitting(labels: histograms.Labels) -> bool:
        # Only creates: the turn makes nothing else, while an engine's own
        # bookkeeping (Kyverno's health Lease, through its own webhook) is
        # an UPDATE. The histogram has no resource label to say more.
        return labels.get("operation") == "CREATE"

    requests = window(REQUEST, creates)
    webhooks: dict[str, Any] = {}
    in_webhooks = window(WEBHOOK, admitting)
    for name in sorted(histograms.label_values(metrics_after, WEBHOOK, "name")):
        hist = window(WEBHOOK, lambda labels, n=name: admitting(labels) and labels.get("name") == n)  # type: ignore[misc]
        if hist.count:
            webhooks[name] = histograms.summary(hist)
    return {
        "requests": len(load.latencies),
        "errors": load.errors,
        "first_error": load.first_error,
        "seconds": round(load.seconds, 2),
        "rps": round(len(load.latencies) / load.seconds, 1),
        "client_ms": {
            "mean": _ms(statistics.fmean(load.latencies)) if load.latencies else None,
            "p50": _ms(_pct(load.latencies, 0.50)),
            "p99": _ms(_pct(load.latencies, 0.99)),
        },
        "apiserver_request_ms": histograms.summary(requests),
        "webhooks_ms": webhooks,
        # the API server's time in webhooks (every one called in the turn),
        # per create it served: the mean latency the engine adds
        "webhook_ms_per_request": round(in_webhooks.sum * 1000 / done, 3),
        "cpu_ms_per_request": {
            k: round((cpu_after[k] - cpu_before[k]) * 1000 / done, 3) for k in cpu_before
        },
    }


# --- rounds -------------------------------------------------------------------------------


def _denied(api: Api) -> bool:
    path = f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All"
    status, body = api.call("POST", path, failing_pod())
    return status != 201 and b"denied the request" in body


def only(api: Api, engines: Sequence[Engine], regs: dict[str, Registration], chosen: str) -> None:
    """Leave the API server with this engine's webhook configurations alone
    ("none": no configuration at all), and wait until it acts on them."""
    for engine in engines:
        if engine.name != chosen:
            engine.pause()
            regs[engine.name].remove()
    if chosen == "none":
        until(lambda: not _denied(api), "no webhook answers")
        return
    regs[chosen].restore()
    next(e for e in engines if e.name == chosen).resume()
    until(lambda: _denied(api), f"{chosen}'s webhooks answer")


def clean(api: Api) -> None:
    """Delete what the real creates made; wait until it is gone."""
    for kind in KINDS.values():
        path = kind[0].format(ns=NAMESPACE)
        status, body = api.call("DELETE", path)
        if status != 200:
            raise RuntimeError(f"deleting {path}: {status} {body[:200]!r}")
        until(lambda p=path: b'"items":[]' in api.get(p + "?limit=1")[1], f"{path} empty", 300)  # type: ignore[misc]


def run_rounds(
    api: Api, engines: Sequence[Engine], cells: Sequence[Cell], args: argparse.Namespace
) -> list[dict[str, Any]]:
    registrations = {e.name: Registration(e.selector) for e in engines}
    for registration in registrations.values():
        registration.take()
    apiserver, etcd = component_pid("kube-apiserver"), component_pid("etcd")
    order = ["none", *(e.name for e in engines)]
    pids = {e.name: e.pids for e in engines}
    rounds = []
    for index in range(args.rounds):
        turn: dict[str, Any] = {}
        # each round starts with another turn, so none always goes first
        for name in order[index % len(order) :] + order[: index % len(order)]:
            only(api, engines, registrations, name)
            sources = Sources(api, apiserver, etcd, pids.get(name, list))
            asyncio.run(drive(api, Cell("pod", True, 4), args.warmup, f"warm-{index}"))
            turn[name] = {
                cell.key: measure(sources, cell, args.seconds, f"r{index}-{name}-{n}")
                for n, cell in enumerate(cells)
            }
            clean(api)
        rounds.append(turn)
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    for engine in engines:  # as they were before the rounds
        engine.pause()
        registrations[engine.name].remove()
        registrations[engine.name].restore()
        engine.resume()
    return rounds


# --- report -------------------------------------------------------------------------------


def _get(result: dict[str, Any], path: str) -> float | None:
    value: Any = result
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else None


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


FIGURES = (
    "rps",
    "client_ms.mean",
    "client_ms.p50",
    "client_ms.p99",
    "apiserver_request_ms.mean",
    "apiserver_request_ms.p50",
    "apiserver_request_ms.p99",
    "webhook_ms_per_request",
    "cpu_ms_per_request.apiserver",
    "cpu_ms_per_request.etcd",
    "cpu_ms_per_request.engine",
)
ADDED = ("client_ms.mean", "client_ms.p50", "client_ms.p99", "apiserver_request_ms.mean",
         "cpu_ms_per_request.apiserver")  # fmt: skip


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per engine and cell: the medians over the rounds, and what the engine
    adds to the same round's turn without webhooks (then the median)."""
    out: dict[str, Any] = {}
    for engine in rounds[0]:
        out[engine] = {}
        for cell in rounds[0][engine]:
            turns = [r[engine][cell] for r in rounds]
            bare = [r["none"][cell] for r in rounds]
            entry: dict[str, Any] = {
                "median": {f: _median([_get(t, f) for t in turns]) for f in FIGURES},
                "errors": sum(t["errors"] for t in turns),
            }
            hooks = sorted({h for t in turns for h in t["webhooks_ms"]})
            entry["webhooks_ms"] = {
                h: {q: _median([t["webhooks_ms"].get(h, {}).get(q) for t in turns])
                    for q in ("mean", "p50", "p99")}
                for h in hooks
            }  # fmt: skip
            if engine != "none":
                entry["added"] = {}
                for f in ADDED:
                    diffs = [
                        None if a is None or b is None else a - b
                        for a, b in (
                            (_get(t, f), _get(n, f)) for t, n in zip(turns, bare, strict=True)
                        )
                    ]
                    entry["added"][f] = _median(diffs)
                ratios = [t["rps"] / n["rps"] for t, n in zip(turns, bare, strict=True) if n["rps"]]
                entry["added"]["rps_ratio"] = _median(ratios)
            out[engine][cell] = entry
    return out


# --- main ---------------------------------------------------------------------------------


def _engines(names: Sequence[str], workdir: Path) -> list[Engine]:
    makers: dict[str, Callable[[], Engine]] = {
        "podgate-host": lambda: PodgateOnHost(workdir / "host"),
        "podgate-node": lambda: PodgateOnNode(workdir / "node"),
        "kyverno": lambda: Kyverno(workdir / "kyverno"),
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise SystemExit(f"unknown engine(s) {unknown}; choose from {sorted(makers)}")
    return [makers[n]() for n in names]


def prepare_namespace() -> None:
    from e2e.conftest import allow_all_network_policy, apply
    from e2e.node.release import create_namespace

    create_namespace(NAMESPACE)
    proc = apply(allow_all_network_policy(NAMESPACE))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["podgate-host"])
    parser.add_argument("--rounds", type=int, default=3, help="median over the rounds")
    parser.add_argument("--seconds", type=float, default=8.0, help="per turn and cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each turn")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument(
        "--modes", nargs="+", default=["dry-run", "real"], choices=["dry-run", "real"]
    )
    args = parser.parse_args(argv)
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        raise SystemExit('KUBECONFIG is not set: eval "$(e2e/cluster.sh env)"')
    cells = [
        Cell(kind, mode == "dry-run", c)
        for kind in args.kinds
        for mode in args.modes
        for c in args.concurrency
    ]
    with tempfile.TemporaryDirectory(prefix="podgate-apiserver-bench-") as tmp:
        # The chart's install creates podgate's own Deployment: it goes first,
        # before another engine's webhooks could judge (and refuse) it.
        names = sorted(args.engines, key=lambda name: name != "podgate-node")
        engines = _engines(names, Path(tmp))
        prepare_namespace()
        started: list[Engine] = []
        try:
            for engine in engines:
                started.append(engine)  # stopped whatever its start got to
                engine.start()
            with from_kubeconfig(kubeconfig) as api:
                rounds = run_rounds(api, engines, cells, args)
        finally:
            for engine in reversed(started):
                engine.stop()
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": vars(args),
        "summary": summarize(rounds),
        "rounds": rounds,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
