"""Kyverno's admission controller beside podgate, built from its Go module.

Nothing of Kyverno is kept in this repository. Its admission controller is
built from the Go module proxy into the e2e cache (as e2e/cluster.sh builds
Kubernetes): a wrapper module that requires github.com/kyverno/kyverno and
repeats the one `replace` of Kyverno's own go.mod (a fork of
k8s.io/pod-security-admission), since `go install pkg@version` refuses a
module with replace directives. The CRDs and the default ConfigMaps come
from the same module's source (config/crds, and the chart's two ConfigMap
templates rendered by helm from a copy without the chart's remote
dependencies).

It runs as a host process out of cluster (`--serverIP`: its webhooks call
`https://127.0.0.1:PORT`, with the CA it makes itself), as podgate does in
URL mode, so the two are compared on the same path. Admission reports are
off (they feed Kyverno's reports controller, which is not run, as podgate's
audit is not), and the events the chart leaves out are left out.

    python -m bench.kyverno build     # prints the binary's path
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from e2e.conftest import free_port, helm, kubectl, kubectl_ok  # noqa: E402
from e2e.node.release import create_namespace  # noqa: E402

VERSION = "v1.19.1"
MODULE = "github.com/kyverno/kyverno"
# Kyverno's go.mod at VERSION replaces this module; a wrapper must repeat it.
REPLACE = (
    "k8s.io/pod-security-admission => "
    "github.com/kyverno/pod-security-admission v0.0.0-20251031094455-46f20778634f"
)
CACHE = Path(os.environ.get("PODGATE_CACHE", Path.home() / ".cache" / "podgate"))
BINARY = CACHE / "bin" / f"kyverno-{VERSION}" / "kyverno"
POLICIES = Path(__file__).with_name("kyverno-policies.yaml")
NAMESPACE = "kyverno"
CRD_DIRS = ("kyverno", "policies.kyverno.io", "policyreport", "reports")
SELECTOR = "webhook.kyverno.io/managed-by=kyverno"


def _go(*args: str, cwd: Path) -> str:
    env = {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off"}
    env.setdefault("GOTOOLCHAIN", "local")
    proc = subprocess.run(
        ["nice", "go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def build() -> Path:
    """The admission controller's binary, built once per version."""
    if BINARY.exists():
        return BINARY
    work = CACHE / "work" / f"kyverno-{VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(
        f"module podgate.local/bench/kyverno\n\ngo 1.26\n\nrequire {MODULE} {VERSION}\n\n"
        f"replace {REPLACE}\n"
    )
    _go("get", f"{MODULE}/cmd/kyverno@{VERSION}", cwd=work)
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    _go("build", "-ldflags", "-s -w", "-o", str(BINARY), f"{MODULE}/cmd/kyverno", cwd=work)
    return BINARY


def module_dir() -> Path:
    """Kyverno's module source, from the module cache (downloaded if need be)."""
    out = _go("mod", "download", "-json", f"{MODULE}@{VERSION}", cwd=CACHE)
    return Path(json.loads(out)["Dir"])


def default_configmaps(source: Path, workdir: Path) -> str:
    """The chart's `kyverno` and `kyverno-metrics` ConfigMaps with its defaults."""
    chart = workdir / "chart"
    shutil.copytree(source / "charts" / "kyverno", chart)
    chart.chmod(0o755)
    meta = chart / "Chart.yaml"
    meta.chmod(0o644)
    text = meta.read_text()
    # the dependencies live in remote chart repositories; the ConfigMaps need none
    meta.write_text(text.split("\ndependencies:", 1)[0] + "\n")
    proc = helm(
        "template", "kyverno", str(chart), "-n", NAMESPACE,
        "--show-only", "templates/config/configmap.yaml",
        "--show-only", "templates/config/metricsconfigmap.yaml",
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"helm template: {proc.stderr}")
    return proc.stdout


@dataclass
class Kyverno:
    """Kyverno's admission controller as a host process, with the equivalent
    policies of bench/kyverno-policies.yaml."""

    workdir: Path
    name: str = "kyverno"
    selector: str = SELECTOR
    process: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)

    def start(self) -> None:
        binary = build()
        source = module_dir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for crds in CRD_DIRS:
            kubectl_ok("apply", "--server-side", "-f", str(source / "config" / "crds" / crds))
        create_namespace(NAMESPACE)  # waits out an earlier run's deletion
        kubectl_ok(
            "apply", "-n", NAMESPACE, "-f", "-", stdin=default_configmaps(source, self.workdir)
        )
        env = {
            **os.environ,
            "KYVERNO_NAMESPACE": NAMESPACE,
            "KYVERNO_POD_NAME": "kyverno-bench",
            "KYVERNO_SERVICEACCOUNT_NAME": "kyverno",
            "KYVERNO_ROLE_NAME": "kyverno",
            "KYVERNO_DEPLOYMENT": "kyverno",
            "KYVERNO_SVC": "kyverno-svc",
            "INIT_CONFIG": "kyverno",
            "METRICS_CONFIG": "kyverno-metrics",
            # Nothing here needs the network beyond loopback (no image
            # verification, TUF off); any other HTTP(S) attempt fails at once.
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        svc = f"kyverno-svc.{NAMESPACE}.svc"
        command = [
            str(binary), f"--kubeconfig={os.environ['KUBECONFIG']}",
            f"--serverIP=127.0.0.1:{self.port}", "--webhookServerHost=127.0.0.1",
            f"--webhookServerPort={self.port}", f"--metricsPort={free_port()}",
            f"--caSecretName={svc}.kyverno-tls-ca", f"--tlsSecretName={svc}.kyverno-tls-pair",
            "--admissionReports=false", "--omitEvents=PolicyApplied,PolicySkipped",
        ]  # fmt: skip
        log = (self.workdir / "kyverno.log").open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        # Its webhook configurations come before its serving certificate: the
        # policies go through its own webhook, so they are applied until it answers.
        self._wait_for(
            lambda: kubectl("apply", "-f", str(POLICIES)).returncode == 0, "policy webhook answer"
        )
        self._wait_for(self._policies_ready, "its policies to be ready")

    def _wait_for(self, check: Callable[[], bool], what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"kyverno exited {self.process.returncode}: see its log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kyverno: no {what} within {timeout} s")
            time.sleep(1)

    def _policies_ready(self) -> bool:
        proc = kubectl("get", "clusterpolicies", "-o", "json")
        if proc.returncode != 0:
            return False
        items = json.loads(proc.stdout)["items"]
        return bool(items) and all(
            any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in i.get("status", {}).get("conditions", []))
            for i in items
        )  # fmt: skip

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None else []

    def pause(self) -> None:
        """Stopped while its configurations are away, or it would make them again."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            procs.stop(self.process, 30)
            self.process = None
        # It leaves its webhook configurations behind, some failing closed:
        # they would refuse every Pod once nothing answers them.
        kubectl("delete", "validatingwebhookconfigurations,mutatingwebhookconfigurations",
                "-l", SELECTOR, "--ignore-not-found")  # fmt: skip
        kubectl("delete", "-f", str(POLICIES), "--ignore-not-found", "--wait=false")
        kubectl("delete", "namespace", NAMESPACE, "--wait=false")


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        raise SystemExit("usage: python -m bench.kyverno build")
    print(build())
