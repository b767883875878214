"""A virtualenv in which the example plugin package is pip-installed next to
podgate, for tests that run `podgate` the way a user does after `pip install`.

The venv reuses the test run's own podgate and dependencies (a `.pth` file adds
the current site-packages, so nothing is downloaded for them), gets a `podgate`
console script generated from podgate's own entry point, and has
`examples/plugin-package` installed into it by pip from a copy of its source.
Only that install touches the network: pip fetches the package's build backend
(setuptools) into an isolated build environment, from its cache after the first run.

To use it from other tests (the webhook over TLS, the audit), import the
session fixture into a conftest.py or test module:

    from tests.plugins.venv import PluginVenv, plugin_venv  # noqa: F401

    def test_serve_loads_the_package(plugin_venv: PluginVenv) -> None:
        proc = subprocess.Popen([str(plugin_venv.podgate), "serve", ...], env=plugin_venv.env())

The package defines `disallow-privileged` and `disallow-host-namespaces`;
`podgate policies` shows their origin as `entry-point:acme-podgate-policies:acme`.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "examples" / "plugin-package"
PACKAGE_NAME = "acme-podgate-policies"
ENTRY_POINT_ORIGIN = f"entry-point:{PACKAGE_NAME}:acme"
PACKAGE_POLICIES = ("disallow-host-namespaces", "disallow-privileged")


@dataclass(frozen=True)
class PluginVenv:
    root: Path
    python: Path
    podgate: Path  # the console script, as `pip install podgate` would create it

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment to run it in: nothing leaks in from the test run's
        own PYTHONPATH or user site, so only what is installed is importable."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONNOUSERSITE"] = "1"
        env["NO_COLOR"] = "1"
        return {**env, **(extra or {})}

    def run(self, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`podgate ARGS...` in the venv; never raises on a non-zero exit."""
        return subprocess.run(
            [str(self.podgate), *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _site_packages(root: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))


def _console_script() -> str:
    """podgate's `podgate = module:function`, read from its installed metadata."""
    scripts = importlib.metadata.distribution("podgate").entry_points.select(
        group="console_scripts", name="podgate"
    )
    (script,) = scripts
    return script.value


def build_plugin_venv(root: Path, package: Path = PACKAGE) -> PluginVenv:
    """Create the venv under root (which must not exist) with package installed."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    python = root / "bin" / "python"
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    # addsitedir, not a bare path: it also runs the parent's own .pth files,
    # among them the one that makes an editable podgate importable.
    (_site_packages(root) / "_podgate_parent.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents), encoding="utf-8"
    )
    module, _, function = _console_script().partition(":")
    podgate = root / "bin" / "podgate"
    podgate.write_text(
        f"#!{python}\nimport sys\nfrom {module} import {function}\n"
        f"if __name__ == '__main__':\n    sys.exit({function}())\n",
        encoding="utf-8",
    )
    podgate.chmod(0o755)
    # Built from a copy: setuptools writes build/ and *.egg-info beside the
    # sources, and the checkout must stay clean (other tests read examples/).
    source = root.parent / f"{root.name}-src"
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    proc = subprocess.run(
        [*pip, "install", "--no-deps", "--no-input", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {package} failed:\n{proc.stdout}\n{proc.stderr}")
    return PluginVenv(root=root, python=python, podgate=podgate)


@pytest.fixture(scope="session")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> PluginVenv:
    """A venv with podgate and examples/plugin-package installed (built once per session)."""
    return build_plugin_venv(tmp_path_factory.mktemp("plugin-venv") / "venv")
