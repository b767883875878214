"""The admission webhooks the API-server benchmark compares, and how each is
switched off and on between the turns of a round.

Each engine is installed once; a round then measures the API server with no
webhook configuration at all, then with one engine's configurations at a
time. Switching is by deleting the engine's webhook configurations and
creating them again from a copy taken once they worked, so the engine keeps
running (warm caches, open connections on its side) and the API server's
view is exactly "configured" or "not configured".
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.procs import with_children
from e2e.conftest import CHART, E2E_CONFIG, Podgate, chart_values, helm, kubectl, kubectl_ok
from e2e.node.release import RESTRICTED, NodeRelease, create_namespace, node_images

STATE = Path(os.environ.get("PODGATE_E2E_DIR", "/tmp/podgate-e2e"))
WEBHOOK_KINDS = "validatingwebhookconfigurations,mutatingwebhookconfigurations"
_VOLATILE = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")


class Engine(Protocol):
    """An admission controller under test."""

    name: str
    selector: str  # label selector of its webhook configurations

    def start(self) -> None: ...

    def pids(self) -> list[int]: ...

    def pause(self) -> None:
        """While its webhook configurations are away (one that would make
        them again must not run then)."""

    def resume(self) -> None: ...

    def stop(self) -> None: ...


def component_pid(name: str) -> int:
    """The pid e2e/cluster.sh recorded for one of its components."""
    return int((STATE / "pids" / f"{name}.pid").read_text())


def pids_of_pods(uids: Iterable[str]) -> list[int]:
    """The processes whose cgroup is one of these pods' (cgroupfs or systemd
    naming): the containers' processes, as the node's cgroups account them."""
    marks = [m for uid in uids for m in (f"pod{uid}", f"pod{uid.replace('-', '_')}")]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if any(mark in cgroups for mark in marks):
            found.append(int(entry.name))
    return found


@dataclass
class Registration:
    """An engine's webhook configurations: taken once, removed and restored."""

    selector: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def take(self) -> None:
        items = json.loads(kubectl_ok("get", WEBHOOK_KINDS, "-l", self.selector, "-o", "json"))
        self.objects = []
        for item in items["items"]:
            for key in _VOLATILE:
                item["metadata"].pop(key, None)
            self.objects.append(item)
        if not self.objects:
            raise RuntimeError(f"no webhook configuration matches {self.selector}")

    def remove(self) -> None:
        kubectl_ok("delete", WEBHOOK_KINDS, "-l", self.selector, "--ignore-not-found")

    def restore(self) -> None:
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": self.objects})
        kubectl_ok("create", "-f", "-", stdin=manifest)


def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait for the API server to act on a change of its webhook configurations."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout} s: {what}")
        time.sleep(0.25)


@dataclass
class PodgateOnHost:
    """podgate serve as a host process, the chart in URL mode (as e2e/conftest.py)."""

    workdir: Path
    name: str = "podgate-host"
    # a release of its own: the webhook configurations are named after it, and
    # podgate on the node may be installed at the same time
    selector: str = "app.kubernetes.io/instance=podgate-host"
    server: Podgate | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = Podgate(self.workdir)
        self.server.start()  # with the e2e config: every policy denies
        values = self.workdir / "values.yaml"
        values.write_text(chart_values(self.server))
        proc = helm(
            "upgrade", "--install", "podgate-host", str(CHART), "-n", "podgate-system",
            "--create-namespace", "-f", str(values),
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"helm: {proc.stderr}")

    def pids(self) -> list[int]:
        if self.server is None or self.server.process is None:
            return []
        return with_children(self.server.process.pid)

    def pause(self) -> None:
        """podgate never makes its webhook configurations (its chart does)."""

    def resume(self) -> None:
        pass

    def stop(self) -> None:
        helm("uninstall", "podgate-host", "-n", "podgate-system", "--no-hooks", "--wait")
        if self.server is not None:
            self.server.stop()


@dataclass
class PodgateOnNode:
    """The chart with podgate's own image on the node (as e2e/node/release.py):
    its defaults (two replicas behind the Service, certificates it manages),
    the e2e config, and no background audit, whose work is not admission."""

    workdir: Path
    name: str = "podgate-node"
    selector: str = "app.kubernetes.io/instance=podgate"
    release: NodeRelease | None = None

    def start(self) -> None:
        images = node_images()
        if images is None:
            raise RuntimeError("no node images: run `e2e/cluster.sh node` and `image` first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        create_namespace("podgate-node", RESTRICTED)
        values = {"audit": {"enabled": False}, "config": E2E_CONFIG}
        self.release = NodeRelease(images, self.workdir, values)
        self.release.install()

    def pids(self) -> list[int]:
        if self.release is None:
            return []
        return pids_of_pods(p["metadata"]["uid"] for p in self.release.pods("webhook"))

    def pause(self) -> None:
        """podgate only patches the caBundle of configurations its chart made."""

    def resume(self) -> None:
        pass

    def stop(self) -> None:
        helm("uninstall", "podgate", "-n", "podgate-node", "--wait", "--timeout", "120s")
        kubectl("delete", "namespace", "podgate-node", "--wait=false")
