"""Start the real server as `podgate serve` runs it: on the main thread of a
process of its own (the deadline's alarm needs it), over TLS with a generated
CA, either as that process with doubles at its cluster seams or as the
`podgate serve` command itself."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from tests.integration.doubles import FakeCluster, SharedSink, fake_cluster
from tests.webhook.fakes import namespace, network_policy, wait_for
from webhook.server import tls
from webhook.server.serve import bind
from webhook.server.worker import Worker, WorkerSettings
from webhook.telemetry.health import Health, HealthServer, Slots

SPAWN = multiprocessing.get_context("spawn")
PLUGIN = Path(__file__).parent / "plugins" / "chaos.py"

BASE_CONFIG = f"""
enforcement: enforce
entry_points: false
plugins: [{PLUGIN}]
policies:
  require-probes: {{action: audit}}
  require-image-digest: {{action: warn}}
  require-network-policy: {{action: deny}}
  explode: {{failure_action: warn}}
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
    *,
    watch_idle_s: float | None = 0.2,
) -> FakeCluster:
    return fake_cluster(SPAWN, namespaces, policies, watch_idle_s=watch_idle_s)


def default_cluster(*, watch_idle_s: float | None = 0.2) -> FakeCluster:
    return cluster(
        [
            namespace("shop"),
            namespace("audited", **{"podgate.dev/mode": "audit"}),
            namespace("quiet", **{"podgate.dev/mode": "off"}),
        ],
        [network_policy("shop", "web-ingress", {"app": "web"})],
        watch_idle_s=watch_idle_s,
    )


def sink() -> SharedSink:
    return SharedSink(SPAWN)


def _serve(
    settings: WorkerSettings,
    sock: socket.socket,
    fake: FakeCluster | None,
    events: SharedSink | None,
    log_path: str,
    ports: Connection,
) -> None:
    """The server's process: what `podgate serve` runs with one worker."""
    from webhook.telemetry import logs
    from webhook.telemetry.exit import leave

    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    logs.configure("info")
    slots = Slots(1)
    health = Health(slots)
    side = HealthServer(health, "127.0.0.1", 0)
    side.start()
    ports.send(side.port)
    cache = fake.cache() if fake is not None else None
    worker = Worker(
        settings, slots=slots, on_terminate=health.terminating.set, cache=cache, sink=events
    )
    worker.run(sock)
    side.stop()
    leave(0)


@dataclass
class Server:
    process: Any  # multiprocessing's SpawnProcess
    port: int
    side_port: int
    cert_dir: Path
    config_path: Path
    log_path: Path
    sink: SharedSink | None
    cluster: FakeCluster | None
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
        return httpx.get(f"http://127.0.0.1:{self.side_port}{path}", timeout=5.0)

    def metrics(self) -> str:
        return self.side_get("/metrics").text

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines so far."""
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        self.client.close()
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGTERM)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def start_server(
    tmp: Path,
    *,
    config_text: str = BASE_CONFIG,
    cluster: FakeCluster | None = None,
    sink: SharedSink | None = None,
    wait_ready: bool = True,
    **settings: Any,
) -> Server:
    cert_dir = tmp / "certs"
    tls.ensure_self_signed(cert_dir, ["localhost"])
    config_path = tmp / "config.yaml"
    config_path.write_text(config_text)
    log_path = tmp / "server.log"
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
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    ports, theirs = SPAWN.Pipe(duplex=False)
    multiprocessing.allow_connection_pickling()
    process = SPAWN.Process(
        target=_serve,
        args=(worker_settings, sock, cluster, sink, str(log_path), theirs),
        name="podgate-test-server",
        daemon=True,
    )
    process.start()
    sock.close()  # the server's process has its own
    if not ports.poll(30):
        process.kill()
        raise AssertionError(f"the server did not start:\n{_text(log_path)}")
    side_port = ports.recv()
    server = Server(process, port, side_port, cert_dir, config_path, log_path, sink, cluster)
    try:
        wait_for(lambda: _answers(server, "/healthz"), timeout=30)
        if wait_ready:
            wait_for(lambda: _answers(server, "/readyz"), timeout=30)
    except AssertionError:
        server.stop()
        raise AssertionError(f"the server did not become ready:\n{_text(log_path)}") from None
    return server


def _answers(server: Server, path: str) -> bool:
    try:
        return server.side_get(path).status_code == 200
    except httpx.HTTPError:
        return False


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else "<no log>"


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
