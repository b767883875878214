"""Run helm against chart/ and hand the rendered objects back as parsed YAML.

helm is found through `PODGATE_HELM`, then the shared build cache
(`$PODGATE_CACHE/bin/helm-*/helm`, default `~/.cache/podgate`, newest first),
then PATH. The tests skip only when none exists; CI builds it (see .ci/run).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# every ci/ values file as a test parameter, named after the file
SCENARIOS = [pytest.param(p, id=p.name.removesuffix("-values.yaml")) for p in CI_VALUES]
RELEASE = "rel"
NAME = f"{RELEASE}-podgate"  # the chart's fullname for that release
NAMESPACE = "podgate-system"
# `go install` without the Makefile's ldflags leaves helm's default
# Capabilities at v1.20, below the chart's kubeVersion; every call says which
# version it renders for.
KUBE_VERSION = "1.30.0"

Obj = dict[str, Any]


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))


def find_tool(name: str, variable: str) -> str | None:
    """`$variable`, else the newest `$PODGATE_CACHE/bin/<name>-<version>/<name>` (where
    e2e/cluster.sh and e2e/tools/ build them), else `name` on PATH."""
    explicit = os.environ.get(variable)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"{variable}={explicit} is not an executable file")
        return explicit
    cache = Path(os.environ.get("PODGATE_CACHE") or Path.home() / ".cache" / "podgate")
    built = sorted(cache.glob(f"bin/{name}-*/{name}"), key=_version_key, reverse=True)
    for candidate in built:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


@functools.cache
def find_helm() -> str | None:
    return find_tool("helm", "PODGATE_HELM")


def helm_or_skip() -> str:
    helm = find_helm()
    if helm is None:
        pytest.skip(
            "helm not found: set PODGATE_HELM, build it into ~/.cache/podgate/bin/helm-<v>/helm "
            "(GOBIN=... go install helm.sh/helm/v3/cmd/helm@v3.22.0) or put it on PATH"
        )
    return helm


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


def run_helm(*args: str) -> HelmResult:
    proc = subprocess.run(
        [helm_or_skip(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "HELM_CACHE_HOME": "/tmp/podgate-helm/cache",
            "HELM_CONFIG_HOME": "/tmp/podgate-helm/config",
            "HELM_DATA_HOME": "/tmp/podgate-helm/data",
        },
    )
    return HelmResult(proc.returncode, proc.stdout, proc.stderr)


def _value_args(values: Sequence[Path], sets: Sequence[str]) -> list[str]:
    args: list[str] = []
    for file in values:
        args += ["--values", str(file)]
    for item in sets:
        args += ["--set", item]
    return args


def template(
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    *,
    namespace: str = NAMESPACE,
    kube_version: str = KUBE_VERSION,
    release: str = RELEASE,
) -> HelmResult:
    return run_helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version,
        *_value_args(values, sets),
    )


def lint(values: Sequence[Path] = (), sets: Sequence[str] = ()) -> HelmResult:
    return run_helm(
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *_value_args(values, sets),
    )


@dataclass(frozen=True)
class Rendered:
    """The objects of one `helm template`, with a few lookups."""

    objects: tuple[Obj, ...]
    namespace: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str | None = None) -> Obj:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def has(self, kind: str, name: str | None = None) -> bool:
        return any(name is None or o["metadata"]["name"] == name for o in self.of_kind(kind))

    def by_component(self, kind: str, component: str) -> Obj:
        found = [
            o
            for o in self.of_kind(kind)
            if o["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} of component {component}, found {len(found)}"
        return found[0]

    def webhook_configurations(self) -> list[Obj]:
        return self.of_kind("ValidatingWebhookConfiguration") + self.of_kind(
            "MutatingWebhookConfiguration"
        )

    def pod_specs(self) -> Iterator[tuple[str, Obj]]:
        """(`Kind/name`, pod spec) of every pod the chart would start."""
        for obj in self.objects:
            spec = obj.get("spec", {})
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["kind"] == "Pod":
                yield name, spec
            elif obj["kind"] in ("Deployment", "Job"):
                yield name, spec["template"]["spec"]


@functools.cache
def _render_cached(
    values: tuple[Path, ...], sets: tuple[str, ...], namespace: str, release: str
) -> Rendered:
    result = template(values, sets, namespace=namespace, release=release)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    objects = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    return Rendered(objects, namespace)


def render(
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    *,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> Rendered:
    helm_or_skip()
    return _render_cached(tuple(values), tuple(sets), namespace, release)


def scenario(name: str) -> Path:
    path = CHART / "ci" / f"{name}-values.yaml"
    assert path.is_file(), f"no such CI scenario: {path}"
    return path


def container(spec: Obj, name: str | None = None) -> Obj:
    containers: list[Obj] = spec["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def flags(args: Sequence[str]) -> dict[str, str | None]:
    """`--flag value` and bare `--flag` pairs of a command line."""
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            if "=" in arg:
                key, value = arg.split("=", 1)
                out[key] = value
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out[arg] = args[i + 1]
                i += 1
            else:
                out[arg] = None
        i += 1
    return out
