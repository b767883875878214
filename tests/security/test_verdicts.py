"""The rows of issue 14's table about verdicts, against the real server: what
one object costs decides only its own answer, an object too big to finish is
refused rather than admitted unchecked, an emptied config file is refused on
reload, and the exempt annotation means nothing under the built-in config."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import reviews as rv
from tests.integration.harness import Server, metric, start_server
from tests.webhook.fakes import wait_for

COSTLY = Path(__file__).parent / "plugins" / "costly.py"
CONFIG = f"""
enforcement: enforce
entry_points: false
plugins: [{COSTLY}]
policies:
  costly: {{budget_ms: 20}}
  require-image-digest: {{action: warn}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("verdicts"), config_text=CONFIG)
    yield srv
    srv.stop()


def _huge_pod(namespace: str) -> dict[str, object]:
    """64 containers of ~45 KB of env each: a ~3 MB Pod."""
    env = [{"name": f"E{i}", "value": "x" * 1000} for i in range(45)]
    containers = [rv.container(f"c{i}", resources={}, env=env) for i in range(64)]
    return rv.pod("huge", namespace, *containers)


def test_one_object_over_a_budget_changes_no_other_verdict(server: Server) -> None:
    huge = server.review("/validate", rv.review(_huge_pod("tenant-a")))
    assert huge["allowed"] is False
    assert "podgate could not check it against 1 policy" in huge["status"]["message"]
    # right after, in another namespace: judged as always, nothing suspended
    for _ in range(3):
        other = server.review(
            "/validate", rv.review(rv.pod("small", "tenant-b", rv.container(resources={})))
        )
        assert other["allowed"] is False
        assert "require-resources" in other["status"]["message"]
        assert "could not evaluate" not in other["status"]["message"]
        fine = server.review("/validate", rv.review(rv.pod("fine", "tenant-b", rv.container())))
        assert fine["allowed"] is True
        # the policy the huge object overran judges the next objects in full
        assert "costly" not in json.dumps([other, fine])


def test_an_object_too_big_for_the_deadline_is_refused_not_admitted(tmp_path: Path) -> None:
    srv = start_server(tmp_path, config_text="enforcement: enforce\n", deadline_s=0.2)
    try:
        containers = [{"name": f"c{i}", "image": "nginx"} for i in range(40_000)]
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "wide", "namespace": "shop"},
               "spec": {"containers": containers}}  # fmt: skip
        answer = srv.review("/validate", rv.review(obj))
        assert answer["allowed"] is False
    finally:
        srv.stop()


def test_an_emptied_config_file_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    srv = start_server(tmp_path, config_text="enforcement: enforce\n")
    try:
        before = metric(srv.metrics(), "podgate_config_reloads_total", result="failure")
        srv.config_path.write_text("")
        wait_for(
            lambda: (
                metric(srv.metrics(), "podgate_config_reloads_total", result="failure") > before
            ),
            timeout=10,
        )
        time.sleep(0.3)
        annotated = rv.pod("web", "shop", rv.container(resources={}),
                           annotations={"podgate.dev/exempt": "*"})  # fmt: skip
        answer = srv.review("/validate", rv.review(annotated))
        assert answer["allowed"] is False
        assert "require-resources" in answer["status"]["message"]
        assert metric(srv.metrics(), "podgate_config_reloads_total", result="success") == 0
    finally:
        srv.stop()


def test_the_exempt_annotation_means_nothing_under_the_built_in_config(
    tmp_path: Path,
) -> None:
    srv = start_server(tmp_path, config_path=None)
    try:
        annotated = rv.pod("web", "shop", rv.container(resources={}),
                           annotations={"podgate.dev/exempt": "*"})  # fmt: skip
        answer = srv.review("/validate", rv.review(annotated))
        assert answer["allowed"] is False
        assert "require-resources" in answer["status"]["message"]
    finally:
        srv.stop()
