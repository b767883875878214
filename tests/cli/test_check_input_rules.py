"""What `podgate check` reads and what it leaves out (webhook/cli/inputs.py):
no manifest found in a folder is skipped, one named is an error, an empty
input is an error, a workload kind at an apiVersion no cluster serves is
refused as kubectl refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Runner

POD = """apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: nginx}]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository as CI users have them: manifests beside a Helm chart and
    a values file."""
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "pod.yaml").write_text(POD)
    (tmp_path / "k8s" / "values.yaml").write_text("replicas: 3\nimage: {repository: web}\n")
    (tmp_path / "k8s" / "empty-object.json").write_text("{}\n")
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "templates" / "d.yaml").write_text("metadata:\n  name: {{ .Values.name }}\n")
    return tmp_path


def test_a_folder_skips_what_is_no_manifest_and_says_so_with_v(podgate: Runner, repo: Path) -> None:
    run = podgate("check", str(repo))
    assert run.code == 1, run.out  # the Pod is refused; nothing else counts
    assert "invalid-manifest" not in run.out
    assert run.out.rstrip().endswith("3 paths skipped (-v lists them)")
    verbose = podgate("check", "-v", str(repo))
    assert f"{repo / 'chart'}: skipped: a Helm chart's source" in verbose.out
    assert f"helm template {repo / 'chart'} | podgate check -" in verbose.out
    for name in ("values.yaml", "empty-object.json"):
        line = f"{repo / 'k8s' / name}: skipped: not a Kubernetes manifest"
        assert line in verbose.out
    skipped = podgate("check", "-o", "json", str(repo)).json()["skipped"]
    assert len(skipped) == 3


@pytest.mark.parametrize("name", ["values.yaml", "empty-object.json"])
def test_a_file_named_that_is_no_manifest_is_an_input_error(
    podgate: Runner, repo: Path, name: str
) -> None:
    run = podgate("check", str(repo / "k8s" / name))
    assert run.code == 2
    assert "not a Kubernetes manifest: none of its documents has a kind" in run.err


def test_a_chart_folder_alone_is_nothing_to_check_with_the_way_to_check_it(
    podgate: Runner, repo: Path
) -> None:
    run = podgate("check", str(repo / "chart"))
    assert run.code == 2
    assert f"helm template {repo / 'chart'} | podgate check -" in run.err


@pytest.mark.parametrize("stdin", [b"", b"# nothing\n---\n", b"---\n"])
def test_empty_stdin_is_an_input_error(podgate: Runner, stdin: bytes) -> None:
    run = podgate("check", "-", stdin=stdin)
    assert run.code == 2
    assert "<stdin>: nothing to check" in run.err


def test_empty_folder_is_an_input_error(podgate: Runner, tmp_path: Path) -> None:
    run = podgate("check", "-o", "json", str(tmp_path))
    assert run.code == 2
    assert run.json()["errors"][0]["reason"].startswith("nothing to check")


@pytest.mark.parametrize(
    ("glob", "left"),
    [("pod.yaml", 0), ("k8s", 0), ("k8s/*", 0), ("*.json", 1), ("nothing-matches", 1)],
)
def test_ignore_leaves_out_files_and_folders_by_name_or_path(
    podgate: Runner, repo: Path, glob: str, left: int
) -> None:
    run = podgate("check", "-o", "json", "--ignore", glob, str(repo))
    assert run.json()["summary"]["documents"] == left
    if not left:
        assert run.code == 2, "nothing left to check"
        assert any(s["reason"] == f"--ignore {glob}" for s in run.json()["skipped"])


def test_a_workload_kind_at_a_version_no_cluster_serves_is_refused(
    podgate: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {template: {spec: {containers: [{name: web, image: nginx}]}}}\n"
    )
    run = podgate("check", str(path))
    assert run.code == 1, "kubectl apply would fail: it must not pass silently"
    assert 'no matches for kind "Deployment" in version "v1"' in run.out
    assert "Kubernetes serves Deployment as apps/v1" in run.out


def test_a_custom_resource_named_like_a_workload_is_not_judged_and_v_says_why(
    podgate: Runner, tmp_path: Path
) -> None:
    path = tmp_path / "crd.yaml"
    path.write_text("apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: x}\n")
    run = podgate("check", "-v", str(path))
    assert run.code == 0
    assert "not evaluated: Deployment of example.com/v1 is a custom resource" in run.out
    assert "not evaluated" not in podgate("check", str(path)).out
