"""Config reload: a valid change is taken, an invalid one refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from policies.model import Mode
from webhook.reload import ConfigHolder


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_reload_valid_and_invalid(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("enforcement: enforce\n")
    holder = ConfigHolder(str(path))
    assert holder.check() is False
    _bump(path, "enforcement: enforce\n")  # touched, same content
    assert holder.check() is False
    _bump(path, "enforcement: audit\n")
    assert holder.check() is True
    assert holder.current.enforcement is Mode.AUDIT
    _bump(path, "policies:\n  require-probes: {action: loud}\n")
    assert holder.check() is False
    assert holder.current.enforcement is Mode.AUDIT
    assert "previous config stays in force" in caplog.text
    assert "policies.require-probes.action" in getattr(caplog.records[-1], "fields", {})["error"]


def test_config_map_symlink_swap(tmp_path: Path) -> None:
    """The kubelet updates a ConfigMap volume by swapping a `..data` symlink."""
    for name, text in (("v1", "enforcement: enforce\n"), ("v2", "enforcement: audit\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(text)
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    holder = ConfigHolder(str(tmp_path / "config.yaml"))
    assert str(holder.current.enforcement) == "enforce"
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert holder.check() is True
    assert holder.current.enforcement is Mode.AUDIT
