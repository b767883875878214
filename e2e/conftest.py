"""The e2e harness: podgate on the host, registered through the Helm chart.

Everything a test asserts comes from what a user sees: kubectl's output, the
objects read back from the API server, Events, and podgate's /metrics. The
API server is real (e2e/cluster.sh, or any cluster through KUBECONFIG);
nothing here fakes it.

podgate runs as a subprocess on the host with a self-signed CA; the chart is
installed in out-of-cluster URL mode with that CA as caBundle, so the webhook
configurations the API server uses are exactly the ones the chart renders.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "chart"
RELEASE = "podgate"
RELEASE_NAMESPACE = "podgate-system"
T = TypeVar("T")

DIGEST = "sha256:" + "a1" * 32
IMAGE = f"registry.example.com/shop/web@{DIGEST}"

# Enforce everything, NetworkPolicy presence included, so each scenario is
# answered by a denial unless it sets up what it needs.
E2E_CONFIG: dict[str, Any] = {
    "enforcement": "enforce",
    "policies": {"require-network-policy": {"action": "deny"}},
    # the annotation is off by default; on, it can be limited to some namespaces
    # (test_existing_workloads' namespace for it is e2e-the-exempt-anno-<suffix>)
    "exemptions": {"allow_annotation": True, "annotation_namespaces": ["e2e-the-exempt-*"]},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


# ------------------------------------------------------------------ commands


def run(
    cmd: list[str], *, stdin: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)


def kubectl(
    *args: str, stdin: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return run(["kubectl", *args], stdin=stdin, timeout=timeout)


def kubectl_ok(*args: str, stdin: str | None = None) -> str:
    proc = kubectl(*args, stdin=stdin)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl_ok(*args, "-o", "json"))


def helm(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run(["helm", *args], timeout=timeout)


def apply(manifest: dict[str, Any] | str, *extra: str) -> subprocess.CompletedProcess[str]:
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    return kubectl("apply", "-f", "-", *extra, stdin=text)


def eventually(check: Callable[[], T | None], timeout: float = 30, step: float = 0.5) -> T:
    """Poll until `check` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s (last: {last!r})")


def ready_on(metrics_port: int) -> bool:
    """Whether the podgate whose side port this is answers /readyz with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------ manifests


def container(name: str = "web", **overrides: Any) -> dict[str, Any]:
    """A container that passes every policy (podgate's defaults fill the rest)."""
    c: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "resources": {"limits": {"memory": "64Mi"}},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
        "readinessProbe": {"tcpSocket": {"port": 8080}},
        # a non-root UID: podgate then adds runAsNonRoot (not on its own, as
        # only the image knows its user)
        "securityContext": {"runAsUser": 10001},
    }
    c.update(overrides)
    return c


def good_pod(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, **labels}},
        "spec": {"containers": [container()]},
    }


def bad_pod(name: str, namespace: str) -> dict[str, Any]:
    """Breaks four policies at once: no resources, no probes, root, a tag."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "containers": [
                {"name": "web", "image": "nginx:1.27", "securityContext": {"runAsUser": 0}}
            ]
        },
    }


def deployment(
    name: str, namespace: str, spec: dict[str, Any], replicas: int = 2
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def allow_all_network_policy(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    }


def policy_events(namespace: str) -> list[dict[str, Any]]:
    events = kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", "reason=PolicyViolation"
    )
    items: list[dict[str, Any]] = events["items"]
    return items


# ------------------------------------------------------------------ podgate


@dataclass
class Podgate:
    """podgate serve, as a process on the host."""

    workdir: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "certs"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "podgate.log"

    @property
    def host(self) -> str:
        """Where the API server reaches podgate: loopback for the control plane of
        e2e/cluster.sh; the host's address on the docker network for kind."""
        return os.environ.get("PODGATE_E2E_WEBHOOK_HOST", "127.0.0.1")

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def ca_bundle(self) -> str:
        return base64.b64encode((self.cert_dir / "ca.crt").read_bytes()).decode()

    def start(self) -> None:
        if not self.config_path.exists():
            self.write_config(E2E_CONFIG)
        cmd = [
            sys.executable, "-m", "webhook.cli", "serve",
            "--self-signed", "--cert-dir", str(self.cert_dir),
            "--host", "127.0.0.1" if self.host == "127.0.0.1" else "0.0.0.0",
            "--san", self.host, "--port", str(self.port),
            "--metrics-port", str(self.metrics_port),
            "--kubeconfig", os.environ["KUBECONFIG"],
            "--config", str(self.config_path),
            "--config-poll-seconds", "0.5",
            "--event-flush-seconds", "1",
            "--shutdown-delay", "0", "--grace-period", "5",
            *self.extra_args,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        eventually(self.ready, timeout=60)

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"podgate exited {self.process.returncode}: {self.tail()}")
        return ready_on(self.metrics_port)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def write_config(self, config: dict[str, Any]) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config))
        tmp.replace(self.config_path)  # atomic, as a ConfigMap update is

    def metric(self, name: str, **labels: str) -> float:
        return scrape(self.metrics_port, name, **labels)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Write a new config and wait until podgate has loaded it."""
        before = self.metric("podgate_config_reloads_total", result="success")
        self.write_config(config)
        eventually(
            lambda: self.metric("podgate_config_reloads_total", result="success") > before,
            timeout=20,
        )


def scrape(port: int, name: str, **labels: str) -> float:
    """Sum of the samples of `name` on a /metrics endpoint whose labels include `labels`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = set(labels.items())
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )


def _require_cluster() -> None:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG is not set: run e2e/run.sh, or point it at a cluster")
    for tool in ("kubectl", "helm"):
        if shutil.which(tool) is None:
            pytest.skip(f'{tool} is not on PATH (eval "$(e2e/cluster.sh env)")')


@pytest.fixture(scope="session")
def podgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podgate]:
    _require_cluster()
    server = Podgate(tmp_path_factory.mktemp("podgate"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        print(f"\n--- podgate log (last lines) ---\n{server.tail(60)}")


def chart_values(server: Podgate, **webhook: Any) -> str:
    values = {
        "webhook": {"deploy": False, "url": server.url, "caBundle": server.ca_bundle(), **webhook},
        "audit": {"enabled": False},
        "preDeleteHook": {"enabled": False},  # a hook Job needs a kubelet; there is none
    }
    return yaml.safe_dump(values)


def helm_upgrade(server: Podgate, **webhook: Any) -> None:
    values = server.workdir / f"values-{uuid.uuid4().hex[:6]}.yaml"
    values.write_text(chart_values(server, **webhook))
    proc = helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "-f",
        str(values),
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def installed(podgate: Podgate) -> Iterator[Podgate]:
    """The chart installed in URL mode: the API server now calls podgate."""
    helm_upgrade(podgate)
    probe_ns = f"e2e-probe-{uuid.uuid4().hex[:6]}"
    kubectl_ok("create", "namespace", probe_ns)
    eventually(
        lambda: (
            "denied the request" in apply(bad_pod("probe", probe_ns), "--dry-run=server").stderr
        ),
        timeout=60,
    )
    kubectl("delete", "namespace", probe_ns, "--wait=false")
    try:
        yield podgate
    finally:
        helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--no-hooks", "--wait")


def new_namespace(
    prefix: str, labels: dict[str, str] | None = None, network_policy: bool = True
) -> str:
    name = f"e2e-{prefix}-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }
    kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    if network_policy:
        kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(allow_all_network_policy(name)))
    # Pods need the namespace's default ServiceAccount (ServiceAccount admission).
    eventually(lambda: kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0)
    return name


@pytest.fixture
def namespace(installed: Podgate, request: pytest.FixtureRequest) -> Iterator[str]:
    name = new_namespace(request.node.name[5:20].replace("_", "-").strip("-"))
    yield name
    kubectl("delete", "namespace", name, "--wait=false")
