"""Connection abuse benchmark: `podgate serve --workers 1` against a client
that only opens connections.

1. Idle connections: the client opens `--idle` TLS connections that each make
   one request and then stay open (as the API server's keep-alive ones do),
   and holds them. Meanwhile legitimate reviews are sent on a keep-alive
   connection and on new connections; their p99 and any status but 200 are
   reported (uvicorn's own connection limit answered 503 here).
2. Bursts: `--bursts` bursts of `--burst-size` TCP connects that never send a
   ClientHello (and, separately, ones that send its first five bytes and
   stall), each held for a second and closed. The server's RSS after them is
   compared with its baseline, taken after a warm-up of reviews and one small
   burst of each kind (the chart's memory limit is 512Mi).

With `--memory-limit` (default 512Mi, as the chart) the server runs in a
memory cgroup made for it (cgroup v1 or v2; skipped where none is writable,
and said so). Prints one JSON document, with the limits of this machine
that cap how many connections one client can hold.

    python bench/connection_abuse.py
    python bench/connection_abuse.py --idle 10000 --bursts 10 --burst-size 2000

Not run in CI: it needs the machine to itself for its latency figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00"  # a TLS record header announcing a ClientHello


def _deny_review(uid: int) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"00000000-0000-0000-0000-{uid:012d}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "name": "web",
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
        },
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def machine_limits() -> dict[str, Any]:
    """What caps the connections one client can hold to one port here."""
    low, high = (int(n) for n in _read("/proc/sys/net/ipv4/ip_local_port_range").split())
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "open_files_per_process": hard,
        "ephemeral_ports_per_destination": high - low + 1,
        "somaxconn": int(_read("/proc/sys/net/core/somaxconn")),
        "tcp_max_syn_backlog": int(_read("/proc/sys/net/ipv4/tcp_max_syn_backlog")),
        "cpus": os.cpu_count(),
        "connections_one_client_can_hold": min(hard, high - low + 1) - 100,
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@contextlib.contextmanager
def memory_cgroup(pid: int, limit_bytes: int) -> Iterator[str | None]:
    """Hold `pid` in a memory cgroup limited to `limit_bytes`; yields where, or None."""
    name = f"podgate-bench-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    if v2.exists() and "memory" in v2.read_text().split():
        group, limit_file = Path("/sys/fs/cgroup") / name, "memory.max"
    else:
        own = next(
            (line.split(":", 2)[2] for line in _read("/proc/self/cgroup").splitlines()
             if line.split(":")[1] == "memory"),
            None,
        )  # fmt: skip
        if own is None:
            yield None
            return
        group, limit_file = (
            Path("/sys/fs/cgroup/memory") / own.lstrip("/") / name,
            ("memory.limit_in_bytes"),
        )
    try:
        group.mkdir()
        (group / limit_file).write_text(str(limit_bytes))
        (group / "cgroup.procs").write_text(str(pid))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        yield None
        return
    try:
        yield str(group)
    finally:
        with contextlib.suppress(OSError):
            (group.parent / "cgroup.procs").write_text(str(pid))
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)  # the server is still leaving it


class Server:
    def __init__(self, tmp: Path, max_connections: int, http_stack: str = "auto") -> None:
        self.port, self.metrics_port = _free_port(), _free_port()
        self.cert_dir = tmp / "certs"
        self.log = (tmp / "serve.log").open("wb")
        config = tmp / "config.yaml"
        config.write_text("enforcement: enforce\n")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "serve", "--self-signed",
             "--cert-dir", str(self.cert_dir), "--config", str(config), "--no-cluster",
             "--host", "127.0.0.1", "--port", str(self.port),
             "--metrics-port", str(self.metrics_port), "--workers", "1",
             "--max-connections", str(max_connections), "--log-level", "warning",
             "--http-stack", http_stack],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"podgate serve did not start: {_read(str(tmp / 'serve.log'))}")
            time.sleep(0.1)
        self.context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))

    def _ready(self) -> bool:
        try:
            return httpx.get(self._side("/readyz"), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _side(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self._side("/metrics"), timeout=10).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? ([^ ]+)$", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(4))
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def hold_idle(server: Server, count: int) -> tuple[list[ssl.SSLSocket], int]:
    """`count` TLS connections, each after one request; and how many failed."""
    held, failed = [], 0
    request = b"GET /policies HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for _ in range(count):
        try:
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            conn = server.context.wrap_socket(raw, server_hostname="localhost")
            conn.sendall(request)
            conn.recv(65536)
            held.append(conn)
        except OSError:
            failed += 1
    return held, failed


def legit_reviews(server: Server, count: int, *, new_connections: bool) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    wrong = 0
    base = f"https://localhost:{server.port}"
    client = None if new_connections else httpx.Client(verify=server.context, timeout=10)
    for i in range(count):
        started = time.perf_counter()
        try:
            if client is None:
                with httpx.Client(verify=server.context, timeout=10) as fresh:
                    resp = fresh.post(f"{base}/validate", json=_deny_review(i))
            else:
                resp = client.post(f"{base}/validate", json=_deny_review(i))
            status = str(resp.status_code)
            if resp.status_code == 200 and resp.json()["response"]["allowed"]:
                wrong += 1
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
    if client is not None:
        client.close()
    latencies.sort()
    return {
        "requests": count,
        "statuses": statuses,
        "admitted_though_must_deny": wrong,
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "max_ms": round(latencies[-1], 2),
    }


def bursts(server: Server, rounds: int, size: int, first_bytes: bytes) -> list[float]:
    after = []
    for _ in range(rounds):
        socks = []
        for _ in range(size):
            try:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                if first_bytes:
                    sock.sendall(first_bytes)
                socks.append(sock)
            except OSError:
                break
        time.sleep(1.0)
        for sock in socks:
            sock.close()
        after.append(rss_mib(server.proc.pid))
    return after


def settle(server: Server, baseline: float, seconds: float = 30.0) -> float:
    """RSS once the server had time to close what is left and hand memory back."""
    deadline = time.monotonic() + seconds
    rss = rss_mib(server.proc.pid)
    while rss > baseline * 1.1 and time.monotonic() < deadline:
        time.sleep(1.0)
        rss = rss_mib(server.proc.pid)
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--burst-size", type=int, default=2_000)
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--max-connections", type=int, default=4096)
    parser.add_argument("--memory-limit", type=int, default=512 * 1024 * 1024)
    parser.add_argument("--http-stack", choices=("auto", "h11"), default="auto")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    report: dict[str, Any] = {"machine": machine_limits(), "settings": vars(args)}
    with tempfile.TemporaryDirectory(prefix="podgate-conn-bench-") as tmp:
        server = Server(Path(tmp), args.max_connections, args.http_stack)
        try:
            with memory_cgroup(server.proc.pid, args.memory_limit) as cgroup:
                report["memory_cgroup"] = cgroup is not None
                # Warm-up: reviews, and one small burst of each kind, so the
                # baseline holds what the first TLS failures allocate once.
                legit_reviews(server, 20, new_connections=False)
                report["rss_after_reviews_mib"] = rss_mib(server.proc.pid)
                bursts(server, 1, 200, b"")
                bursts(server, 1, 200, PARTIAL_HELLO)
                settle(server, report["rss_after_reviews_mib"], seconds=15)
                report["rss_baseline_mib"] = baseline = rss_mib(server.proc.pid)

                for name, first in (("no_client_hello", b""), ("stalled_handshake", PARTIAL_HELLO)):
                    per_burst = bursts(server, args.bursts, args.burst_size, first)
                    after = settle(server, baseline)
                    report[f"bursts_{name}"] = {
                        "bursts": args.bursts,
                        "connects_each": args.burst_size,
                        "rss_mib_after_each": per_burst,
                        "rss_mib_settled": after,
                        "vs_baseline": round(after / baseline, 3),
                        "within_25_percent": after <= baseline * 1.25,
                        "peak_below_512mi": max([*per_burst, after]) < 512,
                    }

                started = time.monotonic()
                held, failed = hold_idle(server, args.idle)
                report["idle"] = {
                    "opened_by_the_client": len(held) + failed,
                    "failed_to_open": failed,
                    "seconds_to_open": round(time.monotonic() - started, 1),
                    "open_on_the_server": int(server.metric("podgate_connections")),
                    "closed_by_podgate_to_make_room": int(
                        server.metric("podgate_connections_closed_total", reason="evicted")
                    ),
                    "rss_mib_while_held": rss_mib(server.proc.pid),
                    "keep_alive": legit_reviews(server, args.reviews, new_connections=False),
                    "new_connections": legit_reviews(
                        server, args.reviews // 3, new_connections=True
                    ),
                }
                for conn in held:
                    conn.close()
                report["idle"]["rss_mib_after_release"] = settle(server, baseline)
                report["after_all"] = legit_reviews(server, 50, new_connections=True)
        except (httpx.HTTPError, OSError) as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            # -9: killed, e.g. by the memory cgroup's OOM killer
            report["server_exit_code_before_stop"] = server.proc.poll()
            server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
