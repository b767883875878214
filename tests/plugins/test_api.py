"""The authoring API: what `from policies import ...` promises plugin authors.

Removing or renaming a name here breaks every plugin that uses it, so the set
is pinned: a change to it has to be made on purpose, here and in the guide.
"""

from __future__ import annotations

import ast
import importlib.resources
import sys
from pathlib import Path
from typing import Any

import pytest

import policies
from policies import POD_KINDS, ContainerList, PodView
from tests.plugins.conftest import REPO

STABLE_API = {
    # decorators and their metadata
    "policy", "mutation", "Params", "NoParams", "Field", "Severity", "Action", "Metadata",
    "Example", "Policy", "Mutation", "PolicyDefinitionError", "Registry",
    # what a policy reads and returns
    "PodView", "ContainerView", "ContainerList", "WorkloadKind", "POD_KINDS", "Violation",
    "Skip", "Context", "StaticContext", "ClusterState", "NetworkPolicyInfo", "format_path",
    # helpers
    "parse_image", "ImageRef", "InvalidImage", "image_matches", "parse_quantity",
    "InvalidQuantity", "selector_matches", "InvalidSelector",
    # running policies (tests, tools)
    "evaluate", "Decision", "PolicyResult", "Outcome", "Mode", "ResourceRef",
}  # fmt: skip

PLUGIN_SOURCES = sorted(
    [
        *(REPO / "examples" / "policies").rglob("*.py"),
        *(REPO / "examples" / "plugin-package").rglob("*.py"),
    ]
)


def test_the_public_names_are_exactly_the_stable_api() -> None:
    assert set(policies.__all__) == STABLE_API
    for name in policies.__all__:
        assert getattr(policies, name) is not None


def test_py_typed_ships_so_plugins_type_check_against_podgate() -> None:
    assert importlib.resources.files("policies").joinpath("py.typed").is_file()


def _top_level_modules(node: ast.AST) -> set[str]:
    found: set[str] = set()
    for item in ast.walk(node):
        if isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            found.add(item.module)
        elif isinstance(item, ast.Import):
            found.update(alias.name for alias in item.names)
    return found


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_examples_need_nothing_but_policies_pydantic_and_stdlib(path: Path) -> None:
    # Written from the guide alone: no reaching into podgate's internal modules.
    modules = _top_level_modules(ast.parse(path.read_text(encoding="utf-8")))
    for module in modules:
        root = module.split(".")[0]
        allowed = module == "policies" or root in ("pydantic", "acme_policies", "__future__")
        assert allowed or root in sys.stdlib_module_names, f"{path.name} imports {module}"


SPEC: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
    "initContainers": [{"name": "setup", "image": "busybox:1.36"}],
    "containers": [
        {"name": "web", "image": "nginx:1.27", "securityContext": {"runAsUser": 0}},
        {"name": "sidecar", "image": "envoy:1.30"},
    ],
    "ephemeralContainers": [{"name": "debug", "image": "busybox:1.36"}],
}
TEMPLATE = {"metadata": {"labels": {"app": "web", "team": "payments"}}, "spec": SPEC}
LABELS = TEMPLATE["metadata"]["labels"]
OBJECTS: dict[str, tuple[str, dict[str, Any]]] = {
    "Pod": ("v1", {"metadata": {"name": "x", "labels": LABELS}, "spec": SPEC}),
    "PodTemplate": ("v1", {"metadata": {"name": "x"}, "template": TEMPLATE}),
    "ReplicationController": ("v1", {"metadata": {"name": "x"}, "spec": {"template": TEMPLATE}}),
    "Deployment": ("apps/v1", {"metadata": {"name": "x"}, "spec": {"template": TEMPLATE}}),
    "StatefulSet": ("apps/v1", {"metadata": {"name": "x"}, "spec": {"template": TEMPLATE}}),
    "DaemonSet": ("apps/v1", {"metadata": {"name": "x"}, "spec": {"template": TEMPLATE}}),
    "ReplicaSet": ("apps/v1", {"metadata": {"name": "x"}, "spec": {"template": TEMPLATE}}),
    "Job": ("batch/v1", {"metadata": {"name": "x"}, "spec": {"template": TEMPLATE}}),
    "CronJob": (
        "batch/v1",
        {"metadata": {"name": "x"}, "spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}}},
    ),
}  # fmt: skip


def test_every_workload_kind_is_covered() -> None:
    assert set(OBJECTS) == POD_KINDS


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_one_pod_view_over_every_workload_kind(kind: str) -> None:
    api_version, body = OBJECTS[kind]
    pod = PodView.from_object({"apiVersion": api_version, "kind": kind, **body})
    assert pod is not None
    assert pod.problems == ()
    assert pod.kind == kind
    assert pod.labels == {"app": "web", "team": "payments"}
    assert [c.name for c in pod.containers()] == ["web", "sidecar", "setup", "debug"]
    assert [c.name for c in pod.containers(ContainerList.INIT)] == ["setup"]
    web, sidecar = pod.containers(ContainerList.CONTAINERS)
    # Paths a message can point the user to, whatever the workload.
    prefix = policies.format_path(pod.spec_path)
    assert web.field("image") == f"{prefix}.containers[0].image"
    # The container's securityContext overrides the pod's, field by field, and
    # effective_field says where the value came from (for the Violation's field).
    assert pod.effective(web, "runAsUser") == 0
    assert (
        pod.effective_field(web, "runAsUser") == f"{prefix}.containers[0].securityContext.runAsUser"
    )
    assert pod.effective(web, "runAsNonRoot") is True
    assert pod.effective_field(web, "runAsNonRoot") == f"{prefix}.securityContext.runAsNonRoot"
    assert pod.effective(sidecar, "runAsGroup") is None
    assert pod.effective_field(sidecar, "runAsGroup") == (
        f"{prefix}.containers[1].securityContext.runAsGroup"
    )


def test_helpers_behave_as_the_guide_says() -> None:
    ref = policies.parse_image("nginx:1.27")
    assert (ref.registry, ref.name, ref.tag, ref.digest, ref.pinned) == (
        "docker.io",
        "nginx",
        "1.27",
        None,
        False,
    )
    assert policies.parse_quantity("128Mi") == 128 * 2**20
    assert policies.parse_quantity("250m") * 4 == 1
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "team", "operator": "In", "values": ["payments", "search"]}
    ]}  # fmt: skip
    assert policies.selector_matches(selector, {"app": "web", "team": "payments"})
    assert not policies.selector_matches(selector, {"app": "web"})
    with pytest.raises(policies.InvalidSelector):
        policies.selector_matches({"matchExpressions": [{"key": "a", "operator": "Is"}]}, {})
