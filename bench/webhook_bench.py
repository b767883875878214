"""Webhook benchmark: podgate's /validate and /mutate against a floor.

The floor is a minimal raw-ASGI app under the same uvicorn, TLS and worker
count that only parses the review and answers `allowed: true`: what any
Python webhook on this stack costs at the least. It runs on two stacks:
h11 on asyncio's loop (podgate's before issue 15, and its fallback) and
uvicorn's fast one (httptools on uvloop, `floor_fast`, when both are
installed), against which issue 15 sets its targets. podgate serves on the
stack `--podgate-stack` names (auto: the fast one where installed). Two
scenarios, each with its own floor turns:

- compliant: a Deployment that passes every policy, podgate's built-in config,
  no cluster (`podgate serve --no-cluster`): the common case;
- failing: every policy set to deny and a Deployment that fails them all,
  require-network-policy included, which needs a synced cluster cache: served
  by podgate's own workers against a fixed cluster (`bench.fixed_cluster`).

All are driven by the same load generator (asyncio, TLS, keep-alive
connections) in two ways:

- throughput: closed loop, `--concurrency` connections sending back to back;
- latency at a fixed offered rate (`--rate`, open loop): requests are sent on
  a fixed schedule and latency is measured from the scheduled time, so a
  stall is not hidden by the generator waiting for it (coordinated omission).

Each run measures the floors, /validate and /mutate in turns (every
server up for the whole measurement), so a slow spell of the shared machine
hits them alike; `--runs` runs are made and the medians reported, with
podgate/floor ratios taken within each run, for each worker count. podgate's
p99 is also given over the runs in which the floor's own p99 met the 5 ms
target (`quiet_runs`): in the others the machine stalled, whatever the app.
A soak (`--soak-seconds`) drives /validate at the fixed rate and reports the
server's RSS at start and end.

`--tracing` measures what tracing costs instead, /validate in turns on:
podgate with tracing off, podgate tracing every request (`--otlp-endpoint`
to an OTLP/HTTP receiver in a process of its own), and, given `--baseline
DIR` (a checkout of another revision, e.g. main before tracing existed),
that revision's podgate, so the cost of the off path is measured against
code without it in the same run.

    python bench/webhook_bench.py                      # a short run
    python bench/webhook_bench.py --workers 1 --pin    # one worker on a core of its own
    python bench/webhook_bench.py --soak-seconds 300   # the 5-minute memory check
    python bench/webhook_bench.py --tracing --baseline ../main --workers 1 --soak-seconds 0

Prints one JSON document. Not run in CI: it needs both cores to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402

DIGEST = "sha256:" + "0" * 64
P99_TARGET_MS = 5.0  # at the fixed rate, on one worker (the target)
NAMESPACE = "shop"
# Every policy refuses what it finds (require-network-policy warns by default).
DENY_ALL_CONFIG = """\
enforcement: enforce
policies:
  require-resources: {action: deny}
  require-probes: {action: deny}
  require-non-root: {action: deny}
  require-image-digest: {action: deny}
  require-network-policy: {action: deny}
"""


def _compliant_container() -> dict[str, Any]:
    """Passes every policy: the common case."""
    return {
        "name": "web",
        "image": f"registry.example.com/shop/web@{DIGEST}",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }


def _failing_container() -> dict[str, Any]:
    """Fails every policy it can: no resources, no probes, root, a tag (and,
    in a namespace without NetworkPolicies, require-network-policy too)."""
    return {
        "name": "web",
        "image": "registry.example.com/shop/web:latest",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "securityContext": {"runAsUser": 0},
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }


def _review(container: dict[str, Any]) -> dict[str, Any]:
    """A Deployment of one container as the API server sends it for a CREATE."""
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": NAMESPACE,
            "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": "2026-11-28T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}},
                }
            ],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [container],
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d1c3f5e-9a8b-4c7d-8e6f-112233445566",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": NAMESPACE,
            "name": "web",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


# --- the floor: parse, answer allowed --------------------------------------------------------


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    review = json.loads(body)
    answer = {
        "apiVersion": review["apiVersion"],
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    payload = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# The floor's two stacks: h11 on asyncio's loop (podgate's fallback), and
# uvicorn's fast one (httptools on uvloop, as `uvicorn[standard]` brings it),
# which issue 15's targets are measured against.
STACKS = {"h11": ("h11", "asyncio"), "fast": ("httptools", "uvloop")}


def fast_stack_missing() -> str | None:
    """Why the fast floor cannot run here, or None."""
    missing = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def serve_floor(port: int, workers: int, cert_dir: str, stack: str = "h11") -> None:
    """uvicorn with the floor app, on a socket bound the way podgate binds its own
    (uvicorn's own multi-worker socket leaves Nagle on), so only the app differs."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from webhook.server.serve import bind

    http, loop = STACKS[stack]
    config = uvicorn.Config(
        "bench.webhook_bench:floor_app",
        workers=workers,
        http=http,
        loop=loop,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ssl_certfile=f"{cert_dir}/tls.crt",
        ssl_keyfile=f"{cert_dir}/tls.key",
        timeout_keep_alive=60,
    )
    sock = bind("127.0.0.1", port)
    server = uvicorn.Server(config)
    if workers == 1:
        server.run(sockets=[sock])
    else:
        Multiprocess(config, sockets=[sock]).run()


# --- servers ----------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int

    def pids(self) -> list[int]:
        """The server process and its children (workers)."""
        return procs.with_children(self.proc.pid)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server and its workers."""
        return procs.cpu_seconds(self.pids())

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return round(total / 1024, 1)

    def stop(self) -> None:
        procs.stop(self.proc)


def _wait_port(port: int, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost"),
            ):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def _start(
    command: list[str], port: int, ctx: ssl.SSLContext, cpus: set[int] | None, root: Path = ROOT
) -> Running:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen(  # `-m` imports podgate from `root`, the cwd
        command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if cpus is not None:
        os.sched_setaffinity(proc.pid, cpus)  # before it spawns workers: they inherit it
    _wait_port(port, ctx, proc)
    return Running(proc, port)


def start_podgate(
    workers: int,
    cert_dir: str,
    ctx: ssl.SSLContext,
    cpus: set[int] | None = None,
    stack: str | None = "auto",
    extra: tuple[str, ...] = (),
    root: Path = ROOT,
) -> Running:
    """`podgate serve` with its built-in config and no cluster: today's scenario.
    No `stack` leaves `--http-stack` out, for a revision that predates it."""
    port = _free_port()
    command = [
        sys.executable, "-m", "webhook.cli", "serve", "--self-signed", "--cert-dir", cert_dir,
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(_free_port()),
        "--workers", str(workers), "--no-cluster", "--shutdown-delay", "0",
        *(("--http-stack", stack) if stack else ()), *extra,
    ]  # fmt: skip
    return _start(command, port, ctx, cpus, root)


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    """An OTLP/HTTP receiver in a process of its own; prints its endpoint,
    and the number of spans it got when its stdin closes."""
    code = (
        "import sys\n"
        "from tests.otlp import HttpReceiver\n"
        "with HttpReceiver() as r:\n"
        "    print(r.endpoint, flush=True)\n"
        "    sys.stdin.read()\n"
        "    print(len(r.collected.spans), flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_failing_podgate(
    workers: int,
    cert_dir: str,
    config: str,
    ctx: ssl.SSLContext,
    cpus: set[int] | None = None,
    stack: str = "auto",
) -> Running:
    """podgate's workers with every policy set to deny, against a fixed cluster
    in which the review's namespace has no NetworkPolicy (bench.fixed_cluster)."""
    port = _free_port()
    command = [
        sys.executable, "-m", "bench.fixed_cluster", "--stack", stack, str(port), str(workers),
        cert_dir, config, NAMESPACE,
    ]  # fmt: skip
    return _start(command, port, ctx, cpus)


def start_floor(
    workers: int, cert_dir: str, ctx: ssl.SSLContext, stack: str, cpus: set[int] | None = None
) -> Running:
    port = _free_port()
    code = (
        "from bench.webhook_bench import serve_floor; "
        f"serve_floor({port}, {workers}, {cert_dir!r}, {stack!r})"
    )
    return _start([sys.executable, "-c", code], port, ctx, cpus)


# --- load generator -----------------------------------------------------------------------------


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext) -> Conn:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
        )
        return cls(reader, writer)

    async def call(self, request: bytes, expect: bytes) -> bool:
        """Send one request; whether the answer was a 200 whose body, without
        spaces, contains `expect` (the verdict the scenario should get)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return head[9:12] == b"200" and expect in body.replace(b" ", b"")

    def close(self) -> None:
        self.writer.close()


Call = tuple[bytes, bytes]  # the request, and what its answer must contain


def http_request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Measure:
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


def _measure(latencies: list[float], errors: int, seconds: float) -> Measure:
    return Measure(
        requests=len(latencies),
        errors=errors,
        seconds=round(seconds, 2),
        rps=round(len(latencies) / seconds, 1),
        p50_ms=round(_pct(latencies, 0.50) * 1000, 3),
        p99_ms=round(_pct(latencies, 0.99) * 1000, 3),
    )


async def closed_loop(
    port: int, ctx: ssl.SSLContext, call: Call, concurrency: int, seconds: float
) -> Measure:
    conns = [await Conn.open(port, ctx) for _ in range(concurrency)]
    for c in conns:  # warm up each connection
        await c.call(*call)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def run(conn: Conn) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ok = await conn.call(*call)
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return _measure(latencies, errors, elapsed)


async def open_loop(
    port: int,
    ctx: ssl.SSLContext,
    call: Call,
    rate: float,
    seconds: float,
    connections: int = 32,
    sample: Callable[[], None] | None = None,
) -> Measure:
    idle: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        conn = await Conn.open(port, ctx)
        await conn.call(*call)
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            ok = await conn.call(*call)
        finally:
            idle.put_nowait(conn)
        latencies.append(loop.time() - scheduled)
        errors += not ok

    start = loop.time()
    interval = 1.0 / rate
    total = int(rate * seconds)
    next_sample = start + 30.0
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if sample is not None and loop.time() >= next_sample:
            sample()
            next_sample += 30.0
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    while not idle.empty():
        idle.get_nowait().close()
    return _measure(latencies, errors, elapsed)


def _median(measures: list[Measure]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("rps", "p50_ms", "p99_ms"):
        out[key] = round(statistics.median(getattr(m, key) for m in measures), 3)
    out["errors"] = sum(m.errors for m in measures)
    out["runs"] = [asdict(m) for m in measures]
    return out


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


ALLOWED, DENIED = b'"allowed":true', b'"allowed":false'


@dataclass(frozen=True)
class Scenario:
    """A review, the podgate that answers it, and the verdict each route must give."""

    name: str
    container: dict[str, Any]
    failing: bool  # every policy set to deny, against bench.fixed_cluster
    expect: dict[str, bytes]


SCENARIOS = (
    Scenario("compliant", _compliant_container(), False, {"validate": ALLOWED, "mutate": ALLOWED}),
    Scenario("failing", _failing_container(), True, {"validate": DENIED, "mutate": ALLOWED}),
)
PATHS = {"validate": "/validate", "mutate": "/mutate"}


@dataclass
class Turns:
    """What one scenario measured, per server, over the runs."""

    throughput: dict[str, list[Measure]]
    fixed: dict[str, list[Measure]]
    cpu_per_request: dict[str, list[float]]

    @classmethod
    def of(cls, names: list[str]) -> Turns:
        return cls({n: [] for n in names}, {n: [] for n in names}, {n: [] for n in names})


def _measure_turn(
    turns: Turns, name: str, server: Running, call: Call, ctx: ssl.SSLContext, args: Any
) -> None:
    cpu_before = server.cpu_s()
    measure = asyncio.run(closed_loop(server.port, ctx, call, args.concurrency, args.seconds))
    turns.cpu_per_request[name].append((server.cpu_s() - cpu_before) / max(1, measure.requests))
    turns.throughput[name].append(measure)
    if args.rate > 0:
        turns.fixed[name].append(
            asyncio.run(open_loop(server.port, ctx, call, args.rate, args.seconds))
        )


def bench_workers(
    workers: int, cert_dir: str, ctx: ssl.SSLContext, args: argparse.Namespace
) -> dict[str, Any]:
    """The floors, /validate and /mutate, for each scenario, measured in turns
    within each run.

    Every server runs for the whole measurement and each run drives them one
    after the other, so a slow spell of the shared machine hits all of them
    in the same run rather than whichever happened to be measured then; the
    ratios are taken within each run, then their median reported.
    """
    cpus = _server_cpus(args.pin)
    floors = ["floor"] + ([] if fast_stack_missing() else ["floor_fast"])
    config = Path(cert_dir) / "deny-all.yaml"
    config.write_text(DENY_ALL_CONFIG)
    servers: dict[str, Running] = {}
    turns = {s.name: Turns.of([*floors, *PATHS]) for s in SCENARIOS}
    try:
        servers["floor"] = start_floor(workers, cert_dir, ctx, "h11", cpus)
        if "floor_fast" in floors:
            servers["floor_fast"] = start_floor(workers, cert_dir, ctx, "fast", cpus)
        stack = args.podgate_stack
        servers["compliant"] = start_podgate(workers, cert_dir, ctx, cpus, stack)
        servers["failing"] = start_failing_podgate(workers, cert_dir, str(config), ctx, cpus, stack)
        for _ in range(args.runs):
            for scenario in SCENARIOS:
                body = json.dumps(_review(scenario.container)).encode()
                for name in floors:
                    call = (http_request("/validate", body), ALLOWED)
                    _measure_turn(turns[scenario.name], name, servers[name], call, ctx, args)
                for name, path in PATHS.items():
                    call = (http_request(path, body), scenario.expect[name])
                    server = servers[scenario.name]
                    _measure_turn(turns[scenario.name], name, server, call, ctx, args)
        rss = {name: server.rss_mb() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    results: dict[str, Any] = {}
    for scenario in SCENARIOS:
        podgate_rss = rss[scenario.name]
        results[scenario.name] = _report(
            turns[scenario.name],
            floors,
            {**rss, "validate": podgate_rss, "mutate": podgate_rss},
            args,
        )
    return results


def _report(turns: Turns, floors: list[str], rss: dict[str, float], args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in [*floors, *PATHS]:
        results[name] = {
            "throughput": _median(turns.throughput[name]),
            # CPU per request is what a busy cluster pays; unlike req/s it
            # hardly moves when other processes share the machine
            "server_cpu_ms_per_request": round(
                statistics.median(turns.cpu_per_request[name]) * 1000, 4
            ),
            "rss_mb": rss[name],
        }
        if args.rate > 0:
            results[name][f"at_{int(args.rate)}_rps"] = _median(turns.fixed[name])
    if args.rate > 0:
        # A run in which the floor itself missed the latency target was a slow
        # spell of the machine: podgate's p99 in the runs where the floor met it
        # tells podgate's tail from the machine's stalls (both are reported).
        quiet = [i for i, m in enumerate(turns.fixed["floor"]) if m.p99_ms <= P99_TARGET_MS]
        results["quiet_runs"] = {
            "runs": quiet,
            **{
                f"{name}_p99_ms_median": (
                    round(statistics.median(turns.fixed[name][i].p99_ms for i in quiet), 3)
                    if quiet
                    else None
                )
                for name in PATHS
            },
        }
    ratios: dict[str, Any] = {}
    results["ratios"] = ratios
    for name in PATHS:
        for floor in floors:
            suffix = "vs_floor" if floor == "floor" else "vs_fast_floor"
            per_run = [
                _ratio(mine.rps, base.rps)
                for mine, base in zip(turns.throughput[name], turns.throughput[floor], strict=True)
            ]
            cpu = list(zip(turns.cpu_per_request[name], turns.cpu_per_request[floor], strict=True))
            ratios[f"{name}_throughput_{suffix}"] = round(statistics.median(per_run), 3)
            ratios[f"{name}_throughput_{suffix}_per_run"] = per_run
            # capacity per core relative to the floor: floor CPU / podgate CPU per request
            ratios[f"{name}_cpu_capacity_{suffix}"] = round(
                statistics.median(_ratio(base, mine) for mine, base in cpu), 3
            )
            # and its inverse, as issue 15 states its target: podgate's CPU
            # per request as a multiple of the floor's
            ratios[f"{name}_cpu_per_request_{suffix}"] = round(
                statistics.median(_ratio(mine, base) for mine, base in cpu), 3
            )
    return results


def _server_cpus(pin: bool) -> set[int] | None:
    """With --pin: the servers on the first core, this load generator on the others."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return None
    os.sched_setaffinity(0, set(available[1:]))
    return {available[0]}


def soak(cert_dir: str, ctx: ssl.SSLContext, args: argparse.Namespace) -> dict[str, Any]:
    body = json.dumps(_review(_compliant_container())).encode()
    server = start_podgate(1, cert_dir, ctx, _server_cpus(args.pin))
    samples: list[float] = []
    rate = args.rate or 1000.0
    try:
        call = (http_request("/validate", body), ALLOWED)
        asyncio.run(open_loop(server.port, ctx, call, rate, 5.0))  # warm-up
        start_rss = server.rss_mb()
        samples.append(start_rss)
        measure = asyncio.run(
            open_loop(
                server.port, ctx, call, rate, args.soak_seconds,
                sample=lambda: samples.append(server.rss_mb()),
            )
        )  # fmt: skip
        end_rss = server.rss_mb()
        samples.append(end_rss)
    finally:
        server.stop()
    return {
        "seconds": args.soak_seconds,
        "rate": rate,
        "requests": measure.requests,
        "errors": measure.errors,
        "p50_ms": measure.p50_ms,
        "p99_ms": measure.p99_ms,
        "rss_start_mb": start_rss,
        "rss_end_mb": end_rss,
        "rss_samples_mb": samples,
    }


def _targets(one: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The targets on one worker: today's (the compliant review, against the
    h11 floor) and issue 15's (the failing review, against the fast floor)."""
    compliant, failing = one["compliant"], one["failing"]
    targets: dict[str, Any] = {
        "validate_throughput_ratio_ge_0.5": compliant["ratios"]["validate_throughput_vs_floor"]
        >= 0.5,
    }
    if args.rate > 0:
        at = f"at_{int(args.rate)}_rps"
        quiet = compliant["quiet_runs"]["validate_p99_ms_median"]
        targets["validate_p99_le_5ms_at_rate"] = (
            compliant["validate"][at]["p99_ms"] <= P99_TARGET_MS
        )
        targets["validate_p99_le_5ms_at_rate_in_quiet_runs"] = (
            quiet if quiet is not None else float("inf")
        ) <= P99_TARGET_MS
    ratios = failing["ratios"]
    if "validate_throughput_vs_fast_floor" in ratios:
        targets["failing_validate_throughput_ge_0.5_of_fast_floor"] = (
            ratios["validate_throughput_vs_fast_floor"] >= 0.5
        )
        targets["failing_validate_cpu_le_2.5x_fast_floor"] = (
            ratios["validate_cpu_per_request_vs_fast_floor"] <= 2.5
        )
    else:
        targets["fast_floor"] = fast_stack_missing()
    return targets


def bench_tracing(
    workers: int, cert_dir: str, ctx: ssl.SSLContext, args: argparse.Namespace
) -> dict[str, Any]:
    """/validate with tracing off, on (every request sampled) and, given
    --baseline, as the baseline revision serves it, in turns within each run."""
    body = json.dumps(_review(_compliant_container())).encode()
    request = (http_request("/validate", body), ALLOWED)
    receiver, endpoint = start_receiver()
    servers: dict[str, Running] = {}
    throughput: dict[str, list[Measure]] = {}
    fixed: dict[str, list[Measure]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        if args.baseline:
            servers["baseline"] = start_podgate(
                workers, cert_dir, ctx, stack=None, root=Path(args.baseline)
            )
        servers["off"] = start_podgate(workers, cert_dir, ctx)
        servers["on"] = start_podgate(
            workers, cert_dir, ctx, extra=("--otlp-endpoint", endpoint, "--trace-sample-ratio", "1")
        )
        for _ in range(args.runs):
            for name, server in servers.items():
                before = server.cpu_s()
                measure = asyncio.run(
                    closed_loop(server.port, ctx, request, args.concurrency, args.seconds)
                )
                cpu.setdefault(name, []).append(
                    (server.cpu_s() - before) / max(1, measure.requests)
                )
                throughput.setdefault(name, []).append(measure)
                fixed.setdefault(name, []).append(
                    asyncio.run(open_loop(server.port, ctx, request, args.rate, args.seconds))
                )
    finally:
        for server in servers.values():
            server.stop()
        spans, _ = receiver.communicate("", timeout=30)
    results: dict[str, Any] = {
        name: {
            "throughput": _median(throughput[name]),
            "server_cpu_ms_per_request": round(statistics.median(cpu[name]) * 1000, 4),
            f"at_{int(args.rate)}_rps": _median(fixed[name]),
        }
        for name in servers
    }
    results["spans_received"] = int(spans.strip() or 0)
    at = f"at_{int(args.rate)}_rps"
    pairs = [("on", "off")] + ([("off", "baseline")] if "baseline" in servers else [])
    results["ratios"] = {
        f"{a}_vs_{b}": {
            "throughput_per_run": [
                _ratio(x.rps, y.rps) for x, y in zip(throughput[a], throughput[b], strict=True)
            ],
            "cpu_per_request_per_run": [_ratio(x, y) for x, y in zip(cpu[a], cpu[b], strict=True)],
            "p99_per_run": [
                _ratio(x.p99_ms, y.p99_ms) for x, y in zip(fixed[a], fixed[b], strict=True)
            ],
            "throughput": _ratio(results[a]["throughput"]["rps"], results[b]["throughput"]["rps"]),
            "cpu_per_request": _ratio(
                results[a]["server_cpu_ms_per_request"], results[b]["server_cpu_ms_per_request"]
            ),
            "p99": _ratio(results[a][at]["p99_ms"], results[b][at]["p99_ms"]),
        }
        for a, b in pairs
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--runs", type=int, default=3, help="repeats; the median is reported")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="fixed offered rate (req/s); 0 skips it"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--soak-seconds", type=float, default=20.0, help="0 skips the soak")
    parser.add_argument(
        "--pin", action="store_true", help="servers on the first core, the load on the others"
    )
    parser.add_argument(
        "--podgate-stack", choices=("auto", "h11"), default="auto",
        help="podgate's HTTP stack (`serve --http-stack`): auto is httptools on uvloop",
    )  # fmt: skip
    parser.add_argument(
        "--tracing", action="store_true", help="measure tracing off and on instead of the floor"
    )
    parser.add_argument(
        "--baseline", metavar="DIR", help="with --tracing: also a checkout of another revision"
    )
    parser.add_argument(
        "--json-line", action="store_true", help="print the report on one line (JSON lines)"
    )
    args = parser.parse_args(argv)

    from webhook.server import tls

    with tempfile.TemporaryDirectory(prefix="podgate-bench-") as cert_dir:
        tls.ensure_self_signed(Path(cert_dir), ["localhost"])
        ctx = ssl.create_default_context(cafile=f"{cert_dir}/ca.crt")
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "params": vars(args),
            "fast_floor": fast_stack_missing() or "httptools on uvloop",
        }
        for workers in args.workers:
            bench = bench_tracing if args.tracing else bench_workers
            report[f"workers_{workers}"] = bench(workers, cert_dir, ctx, args)
        if args.soak_seconds > 0:
            report["soak_validate_1_worker"] = soak(cert_dir, ctx, args)
    one = report.get("workers_1")
    if one and not args.tracing:
        report["targets"] = _targets(one, args)
    print(json.dumps(report) if args.json_line else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
