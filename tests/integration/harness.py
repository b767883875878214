"""Start the real server: in a thread (with fakes at the kube seam) or as a
`podgate serve` subprocess, over TLS with a generated CA."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from policies.model import Context
from tests.webhook.fakes import FakeSink, FakeSource, namespace, network_policy, wait_for
from webhook import tls
from webhook.cluster import NAMESPACES, NETWORK_POLICIES, ClusterCache
from webhook.health import Health, HealthServer, Slots
from webhook.serve import bind
from webhook.server import Worker, WorkerSettings

PLUGIN = Path(__file__).parent / "plugins" / "chaos.py"

BASE_CONFIG = f"""
enforcement: enforce
entry_points: false
plugins: [{PLUGIN}]
policies:
  require-probes: {{action: audit}}
  require-image-digest: {{action: warn}}
  require-network-policy: {{action: deny}}
  explode-strict: {{failure_action: deny}}
  slow: {{budget_ms: 20000}}
exemptions:
  namespaces: [kube-system]
"""


def tls_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? ([^ ]+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


def cluster(
    namespaces: Sequence[dict[str, Any]] = (),
    policies: Sequence[dict[str, Any]] = (),
) -> tuple[ClusterCache, FakeSource, FakeSource]:
    netpols = FakeSource(NETWORK_POLICIES, list(policies))
    nss = FakeSource(NAMESPACES, list(namespaces))
    cache = ClusterCache(
        netpols, nss, stale_after_s=60.0, watch_timeout_s=1, backoff_initial_s=0.05
    )
    return cache, netpols, nss


def default_cluster() -> tuple[ClusterCache, FakeSource, FakeSource]:
    return cluster(
        [
            namespace("shop"),
            namespace("audited", **{"podgate.dev/mode": "audit"}),
            namespace("quiet", **{"podgate.dev/mode": "off"}),
        ],
        [network_policy("shop", "web-ingress", {"app": "web"})],
    )


@dataclass
class Server:
    worker: Worker
    health: Health
    side: HealthServer
    thread: threading.Thread
    port: int
    cert_dir: Path
    config_path: Path
    sink: FakeSink | None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=f"https://localhost:{self.port}",
            verify=tls_context(self.cert_dir / tls.CA_FILE),
            timeout=10.0,
        )

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / tls.CA_FILE

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def review(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.post(path, body)
        assert resp.status_code == 200, resp.text
        answer: dict[str, Any] = resp.json()
        assert answer["apiVersion"] == body["apiVersion"]
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == body["request"]["uid"]
        response: dict[str, Any] = answer["response"]
        return response

    def side_get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.side.port}{path}", timeout=5.0)

    def metrics(self) -> str:
        return self.side_get("/metrics").text

    def stop(self) -> None:
        self.client.close()
        self.worker.shutdown()
        self.thread.join(10)
        self.side.stop()


def start_server(
    tmp: Path,
    *,
    config_text: str = BASE_CONFIG,
    context: Context | None = None,
    sink: FakeSink | None = None,
    wait_ready: bool = True,
    **settings: Any,
) -> Server:
    cert_dir = tmp / "certs"
    tls.ensure_self_signed(cert_dir, ["localhost"])
    config_path = tmp / "config.yaml"
    config_path.write_text(config_text)
    base = WorkerSettings(
        cert_file=str(cert_dir / tls.CERT_FILE),
        key_file=str(cert_dir / tls.KEY_FILE),
        config_path=str(config_path),
        deadline_s=2.0,
        read_timeout_s=1.0,
        shutdown_delay_s=0.0,
        grace_s=5.0,
        config_poll_s=0.1,
        cert_check_s=0.05,
        event_burst=1000,  # a module's tests share one server: never rate-limit its Events
    )
    worker_settings = dataclasses.replace(base, **settings)
    slots = Slots(1)
    health = Health(slots)
    worker = Worker(
        worker_settings,
        slots=slots,
        on_terminate=health.terminating.set,
        context=context,
        sink=sink,
    )
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=worker.run, args=(sock,), daemon=True)
    thread.start()
    side = HealthServer(health, "127.0.0.1", 0)
    side.start()
    wait_for(lambda: worker.server.started, timeout=10)
    server = Server(worker, health, side, thread, port, cert_dir, config_path, sink)
    if wait_ready:
        wait_for(lambda: server.side_get("/readyz").status_code == 200, timeout=10)
    return server


# --- as a subprocess ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    cert_dir: Path
    log_file: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://localhost:{self.port}",
            verify=tls_context(self.cert_dir / tls.CA_FILE),
            timeout=kwargs.pop("timeout", 10.0),
            **kwargs,
        )

    def side_get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5.0)

    def ready(self) -> bool:
        try:
            return self.side_get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_file.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start_process(tmp: Path, *args: str, config_text: str = BASE_CONFIG) -> Process:
    port, metrics_port = free_port(), free_port()
    config_path = tmp / "config.yaml"
    config_path.write_text(config_text)
    cert_dir = tmp / "certs"
    log_file = tmp / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        sys.executable, "-m", "webhook.cli", "serve",
        "--self-signed", "--cert-dir", str(cert_dir),
        "--config", str(config_path),
        "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
        "--no-cluster", *args,
    ]  # fmt: skip
    with log_file.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    process = Process(proc, port, metrics_port, cert_dir, log_file)
    deadline = time.monotonic() + 30
    while not process.ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            process.stop()
            raise AssertionError(f"podgate serve did not become ready:\n{process.log()}")
        time.sleep(0.1)
    return process
