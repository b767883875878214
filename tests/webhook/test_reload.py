"""Config reload: a valid change is taken, an invalid one refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from policies.engine import evaluate
from policies.model import OFFLINE, Mode
from webhook.server.reload import ConfigHolder


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


POLICY = """
from policies import PodView, Violation, policy

@policy("team-label", title="Pods carry a team label", category="ownership")
def team_label(pod: PodView):
    if "{label}" not in pod.labels:
        yield Violation("no {label} label", field="metadata.labels")
"""


def test_an_edited_plugin_file_is_reloaded(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    policy_file = plugins / "team.py"
    policy_file.write_text(POLICY.format(label="team"))
    config = tmp_path / "config.yaml"
    config.write_text("plugins: [plugins]\nentry_points: false\n")
    holder = ConfigHolder(str(config))
    assert "team-label" in holder.current.registry.policies
    first = holder.current
    assert holder.check() is False
    _bump(policy_file, POLICY.format(label="owner"))
    assert holder.check() is True, "the config file did not change, its plugin did"
    assert holder.current is not first
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"team": "a"}},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}  # fmt: skip
    before = next(r for r in evaluate(pod, OFFLINE, first).results if r.policy == "team-label")
    after = next(r for r in evaluate(pod, OFFLINE, holder.current).results
                 if r.policy == "team-label")  # fmt: skip
    assert (before.outcome, after.outcome) == ("pass", "fail"), "the edited code runs"
    _bump(policy_file, "this is not python(")
    assert holder.check() is False, "a broken plugin is refused; the last good one stays"
    assert holder.current.registry.policies["team-label"] is not None


def test_plugins_from_a_config_map_volume(tmp_path: Path) -> None:
    """The kubelet's layout: each key a symlink into `..data`, itself a symlink to a
    timestamped folder; an update swaps `..data`. Each policy loads once, and the
    swap is a reload."""
    mount = tmp_path / "plugins"
    mount.mkdir()
    for version, label in (("..2026_11_28_v1", "team"), ("..2026_11_28_v2", "owner")):
        (mount / version).mkdir()
        (mount / version / "team.py").write_text(POLICY.format(label=label))
    (mount / "..data").symlink_to("..2026_11_28_v1")
    (mount / "team.py").symlink_to("..data/team.py")
    config = tmp_path / "config.yaml"
    config.write_text(f"plugins: [{mount}]\nentry_points: false\n")
    holder = ConfigHolder(str(config))  # three copies on disk would be a duplicate id
    assert list(holder.current.registry.policies).count("team-label") == 1
    (mount / "..data_tmp").symlink_to("..2026_11_28_v2")
    os.replace(mount / "..data_tmp", mount / "..data")
    assert holder.check() is True
