"""podgate installed by Helm onto the e2e node, as a user installs it.

The image is the one `e2e/cluster.sh image` built from the project's
Dockerfile and imported into the node's containerd; its names and digest are
in `<state dir>/node/images.env`. The release is the chart with its default
values plus the image reference (by digest), in a namespace that enforces the
`restricted` Pod Security Standard, so the API server's own admission judges
every pod the chart starts.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from e2e.conftest import CHART, eventually, helm, kubectl, kubectl_json, kubectl_ok

STATE = Path(os.environ.get("PODGATE_E2E_DIR", "/tmp/podgate-e2e"))
IMAGES_ENV = STATE / "node" / "images.env"
RELEASE = "podgate"
NAMESPACE = "podgate-node"
RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
}


@dataclass(frozen=True)
class NodeImages:
    """What `e2e/cluster.sh image` imported into the node."""

    podgate: str  # repository:tag
    digest: str  # sha256:...
    root_image: str  # a Python image that runs as root, by digest

    @property
    def repository(self) -> str:
        return self.podgate.rsplit(":", 1)[0]

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def node_images() -> NodeImages | None:
    if not IMAGES_ENV.is_file():
        return None
    env = dict(line.split("=", 1) for line in IMAGES_ENV.read_text().splitlines() if "=" in line)
    return NodeImages(
        env["PODGATE_E2E_IMAGE"], env["PODGATE_E2E_IMAGE_DIGEST"], env["PODGATE_E2E_ROOT_IMAGE"]
    )


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class NodeRelease:
    images: NodeImages
    workdir: Path
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def base_values(self) -> dict[str, Any]:
        return {"image": {"repository": self.images.repository, "digest": self.images.digest}}

    def _values_file(self) -> Path:
        path = self.workdir / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(merge(self.base_values, self.values)))
        return path

    def install(self, timeout: str = "180s") -> str:
        """`helm upgrade --install --wait`; returns helm's output."""
        proc = helm(
            "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE,
            "-f", str(self._values_file()), "--wait", "--timeout", timeout,
            timeout=240,
        )  # fmt: skip
        assert proc.returncode == 0, f"helm: {proc.stderr}\n{self.describe()}"
        return proc.stdout

    def upgrade(self, values: dict[str, Any], timeout: str = "180s") -> str:
        self.values = merge(self.values, values)
        return self.install(timeout)

    def installed(self) -> bool:
        return helm("status", RELEASE, "-n", NAMESPACE).returncode == 0

    def pods(self, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = kubectl_json("get", "pods", "-n", NAMESPACE, "-l", selector)[
            "items"
        ]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self, component: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(component) if is_ready(p)]

    def describe(self) -> str:
        """What a person would look at when the release does not come up."""
        out = kubectl("get", "pods,events", "-n", NAMESPACE, "-o", "wide").stdout
        for pod in kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout.split():
            out += f"\n--- logs {pod}\n" + kubectl("logs", "-n", NAMESPACE, pod, "--tail=20").stdout
        return out

    def metrics(self, pod: str, port: int = 8080) -> str:
        """A pod's /metrics, through the API server's pod proxy."""
        return kubectl_ok(
            "get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{port}/proxy/metrics"
        )

    def in_pod(self, pod: str, code: str) -> str:
        """Run Python in a podgate container (the image has no shell)."""
        return kubectl_ok("exec", "-n", NAMESPACE, pod, "--", "python", "-c", code)


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_rolled_out(kind_name: str, namespace: str, timeout: float = 180) -> None:
    proc = kubectl(
        "rollout",
        "status",
        kind_name,
        "-n",
        namespace,
        f"--timeout={int(timeout)}s",
        timeout=timeout + 10,
    )
    assert proc.returncode == 0, proc.stderr


def create_namespace(name: str, labels: dict[str, str] | None = None) -> None:
    """Create (or label) `name`, waiting out an earlier run's deletion of it."""
    eventually(
        lambda: "deletionTimestamp" not in kubectl("get", "namespace", name, "-o", "json").stdout,
        timeout=120,
    )
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }
    kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    eventually(lambda: kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0)


def delete_namespace(name: str) -> None:
    kubectl("delete", "namespace", name, "--wait=false")


def lease_holder(name: str = "podgate-audit") -> str | None:
    proc = kubectl("get", "lease", name, "-n", NAMESPACE, "-o", "json")
    if proc.returncode != 0:
        return None
    holder: str | None = json.loads(proc.stdout)["spec"].get("holderIdentity")
    return holder


def timed(check: Any, timeout: float, step: float = 0.2) -> float:
    """Seconds until `check()` is truthy (AssertionError past `timeout`)."""
    start = time.monotonic()
    eventually(check, timeout=timeout, step=step)
    return time.monotonic() - start


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def all_events(namespace: str) -> Iterator[dict[str, Any]]:
    yield from kubectl_json("get", "events", "-n", namespace)["items"]
