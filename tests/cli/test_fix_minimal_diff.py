"""`check --fix --write` changes what it fixes and nothing else: a diff of
the file shows the inserted defaults, not a re-indented document."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from tests.cli.conftest import Runner
from webhook.cli.text_patch import patched_text

# Three list styles in one document (indented, not indented, indented by
# four), flow and block mappings, a comment on a line the fix follows.
MIXED = """# shop, as the team writes it
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27   # pinned soon
        args:
          - --port=8080
          - --verbose
        securityContext: {runAsUser: 10001}
        env:
            - name: A
              value: "1"
      - name: sidecar
        image: envoy:1.30
        resources:
          requests:
            memory: 1Gi
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: report:2
"""


def removed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line.startswith("-") and not line.startswith("---")]


def test_write_only_adds_what_it_fixes(podgate: Runner, tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(MIXED)
    podgate("check", "--fix", "--write", str(path))
    fixed = path.read_text()
    # the one line that changes is a flow mapping that gets keys
    assert removed_lines(MIXED, fixed) == ["-        securityContext: {runAsUser: 10001}"]
    assert "        securityContext: {runAsUser: 10001, runAsNonRoot: true, " in fixed
    assert "          - --port=8080\n" in fixed, "untouched lists keep their indentation"
    assert "            - name: A\n" in fixed
    first = next(iter(yaml.safe_load_all(fixed)))
    containers = first["spec"]["template"]["spec"]["containers"]
    assert containers[1]["resources"] == {
        "requests": {"memory": "1Gi", "cpu": "100m"},
        "limits": {"memory": "1Gi"},
    }
    again = podgate("check", "--fix", "--write", str(path))
    assert "nothing to change" in again.err
    assert path.read_text() == fixed


def test_added_keys_follow_the_indentation_around_them() -> None:
    text = "spec:\n    containers:\n    -   name: a\n        image: x\n"
    ops = [
        {"op": "add", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "1"}}}
    ]
    assert (
        patched_text(text, ops)
        == text + "        resources:\n          requests:\n            cpu: '1'\n"
    )


def test_flow_collections_get_their_entries_in_place() -> None:
    text = "a: {}\nb: {x: 1}\nc: [1]\n"
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/a/k", "value": True},
        {"op": "add", "path": "/b/y", "value": "two"},
        {"op": "add", "path": "/c/1", "value": 2},
    ]
    assert patched_text(text, ops) == "a: {k: true}\nb: {x: 1, y: two}\nc: [1, 2]\n"


def test_replaced_values_stay_where_they_were() -> None:
    text = "a: null  # was empty\nb:\nc:\n- 1\n- 2\nd: 3\n"
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/a", "value": {"k": 1}},
        {"op": "replace", "path": "/b", "value": "x"},
        {"op": "replace", "path": "/c", "value": [1, 2, 3]},
    ]
    assert patched_text(text, ops) == "a: {k: 1}  # was empty\nb: x\nc:\n- 1\n- 2\n- 3\nd: 3\n"


def test_what_is_not_edited_in_text_falls_back() -> None:
    assert patched_text("a: 1\n", [{"op": "remove", "path": "/a"}]) is None
    assert patched_text("a: [1, 2]\n", [{"op": "add", "path": "/a/0", "value": 0}]) is None
