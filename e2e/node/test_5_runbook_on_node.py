"""The runbook's and troubleshooting guide's commands that need podgate's own
pods, run as written against the release on the node, in the situation their
section describes (`<!-- node: ID -->` above each block in docs/).

As in e2e/test_runbook.py, only names are substituted: the release's namespace
for `podgate-system`, a fresh namespace for `shop`, the chart's path for
`./chart`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e.conftest import (
    CHART,
    allow_all_network_policy,
    apply,
    bad_pod,
    deployment,
    eventually,
    kubectl_ok,
)
from e2e.node.release import (
    NAMESPACE,
    NodeRelease,
    create_namespace,
    delete_namespace,
    names,
    wait_rolled_out,
)
from e2e.node.traffic import GOOD_POD
from tests.docs.blocks import OPERATIONS_DOCS, SHELL, blocks

BY_ID = {
    b.label: b
    for doc in OPERATIONS_DOCS
    for b in blocks(doc)
    if b.lang in SHELL and b.marker == "node" and b.label
}
# The block ids each test runs, declared where it is defined.
RUN: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def runs(*ids: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        RUN.update(ids)
        return test

    return mark


BOOM = '''\
from collections.abc import Iterator

from policies import PodView, Violation, policy


@policy("e2e-boom", title="Raises when asked", category="reliability", severity="low")
def boom(pod: PodView) -> Iterator[Violation]:
    """Raises for an object annotated podgate-e2e/boom: a plugin's bug."""
    if pod.annotations.get("podgate-e2e/boom") == "yes":
        raise RuntimeError("boom, as asked")
    yield from ()
'''


def run_block(
    block_id: str, cwd: Path, *, shop: str | None = None, errexit: bool = True
) -> subprocess.CompletedProcess[str]:
    assert block_id in RUN, f"declare {block_id} with @runs on the test"
    block = BY_ID[block_id]
    text = block.text.replace("./chart", str(CHART)).replace("podgate-system", NAMESPACE)
    if shop is not None:
        text = re.sub(r"\bshop\b", shop, text)
    options = "set -euo pipefail" if errexit else "set -uo pipefail"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", f"{options}\n{text}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
    )  # fmt: skip
    if errexit:
        where = f"{block.where} ({block_id})"
        assert proc.returncode == 0, f"{where} exited {proc.returncode}:\n{proc.stdout}"
    return proc


@pytest.fixture
def shop(release: NodeRelease) -> Iterator[str]:
    name = f"e2e-rb-shop-{uuid.uuid4().hex[:6]}"
    create_namespace(name)
    apply(allow_all_network_policy(name))
    yield name
    delete_namespace(name)


@runs(
    "webhook-first-look", "webhook-endpoints", "readyz-endpoints", "rollout-status",
    "cache-rbac", "audit-first-look",
)  # fmt: skip
def test_first_looks_at_the_webhook_and_the_audit(release: NodeRelease, tmp_path: Path) -> None:
    webhook_pods = names(release.pods("webhook"))
    first = run_block("webhook-first-look", tmp_path).stdout
    assert all(pod in first for pod in webhook_pods)
    assert re.search(r"^ok$", first, re.M), "readyz through the Service"
    # metrics present before any admission: the certificate served, the caches
    assert re.search(r"^podgate_certificate_expiry_timestamp_seconds [1-9]", first, re.M)
    assert re.search(r'^podgate_cluster_cache_synced\{resource="namespaces"\} 1', first, re.M)
    endpoints = run_block("webhook-endpoints", tmp_path).stdout
    assert all(pod in endpoints for pod in webhook_pods)
    assert re.search(r"^podgate-\w+ ", endpoints, re.M), "the Service's EndpointSlice"
    assert re.search(r"^ok$", run_block("readyz-endpoints", tmp_path).stdout, re.M)
    rolled = run_block("rollout-status", tmp_path).stdout
    assert 'deployment "podgate" successfully rolled out' in rolled
    assert 'deployment "podgate-audit" successfully rolled out' in rolled
    caches = run_block("cache-rbac", tmp_path).stdout
    assert caches.splitlines()[:2] == ["yes", "yes"]
    assert '"msg":"cache synced"' in caches
    audit = run_block("audit-first-look", tmp_path).stdout
    assert "waiting for the audit Lease" in audit
    assert "deployment.apps/podgate-audit restarted" in audit
    wait_rolled_out("deployment/podgate-audit", NAMESPACE)


@runs("certificate-logs", "webhook-restart", "webhook-restart-only", "audit-restart")
def test_restarts_the_runbook_asks_for(release: NodeRelease, tmp_path: Path) -> None:
    before = set(names(release.pods("webhook")))
    certificates = run_block("certificate-logs", tmp_path).stdout
    assert "serving certificate loaded" in certificates
    assert "deployment.apps/podgate restarted" in certificates
    # kubectl refuses a second restart within a second of the first
    wait_rolled_out("deployment/podgate", NAMESPACE)
    assert "successfully rolled out" in run_block("webhook-restart", tmp_path).stdout
    assert not before & set(names(release.ready_pods("webhook")))
    assert "restarted" in run_block("webhook-restart-only", tmp_path).stdout
    wait_rolled_out("deployment/podgate", NAMESPACE)
    assert "restarted" in run_block("audit-restart", tmp_path).stdout
    wait_rolled_out("deployment/podgate-audit", NAMESPACE)


@runs("serving-certificate")
def test_the_serving_certificate_as_the_api_server_sees_it(
    release: NodeRelease, tmp_path: Path
) -> None:
    shown = run_block("serving-certificate", tmp_path).stdout
    assert "issuer=CN = podgate-ca" in shown, shown
    assert f"DNS:podgate.{NAMESPACE}.svc" in shown, shown
    assert "notAfter=" in shown


@runs("shop-rollout")
def test_a_workload_rolls_out_on_the_node(release: NodeRelease, shop: str, tmp_path: Path) -> None:
    spec = {**GOOD_POD["spec"], "containers": [_http_server(release.images.pinned)]}
    assert apply(deployment("web", shop, spec, replicas=1)).returncode == 0
    assert "successfully rolled out" in run_block("shop-rollout", tmp_path, shop=shop).stdout


def _http_server(image: str) -> dict[str, object]:
    return {
        "name": "web",
        "image": image,
        "command": ["python3", "-m", "http.server", "8080", "--directory", "/tmp"],
        "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
    }


@runs("evaluation-errors", "policy-errors")
def test_a_plugin_that_raises_shows_in_the_logs(
    release: NodeRelease, shop: str, tmp_path: Path
) -> None:
    release.upgrade(
        {
            "plugins": {"files": {"e2e_boom.py": BOOM}},
            "config": {"policies": {"e2e-boom": {"action": "warn"}}},
        }
    )
    try:
        pod = {**bad_pod("boom", shop)}
        pod["metadata"] = {**pod["metadata"], "annotations": {"podgate-e2e/boom": "yes"}}
        eventually(lambda: "boom, as asked" in apply(pod, "--dry-run=server").stderr, timeout=90)
        errors = run_block("evaluation-errors", tmp_path).stdout
        assert re.search(r'"decision": ?"error"|e2e-boom', errors), errors
        assert (
            "policy raised RuntimeError: boom, as asked"
            in run_block("policy-errors", tmp_path).stdout
        )
    finally:
        release.values.pop("plugins", None)
        release.values.get("config", {}).get("policies", {}).pop("e2e-boom", None)
        release.install()


@runs("config-not-loaded")
def test_a_config_that_does_not_load(release: NodeRelease, tmp_path: Path) -> None:
    """Written past Helm (kubectl edit), as the runbook's alert describes."""
    patch = '{"data": {"config.yaml": "policies: {require-probes: {action: sometimes}}\\n"}}'
    kubectl_ok("patch", "configmap", "podgate-config", "-n", NAMESPACE, "--type=merge", "-p", patch)
    try:
        shown = eventually(
            lambda: (
                (p := run_block("config-not-loaded", tmp_path, errexit=False)).returncode == 0
                and p.stdout
            ),
            timeout=120,
            step=3,
        )
        assert "previous config stays in force" in str(shown)
    finally:
        release.install()  # Helm writes its ConfigMap back


@runs("events-rbac")
def test_events_when_podgate_may_not_create_them(
    release: NodeRelease, shop: str, tmp_path: Path
) -> None:
    role = "podgate-webhook"
    rules = kubectl_ok("get", "clusterrole", role, "-o", "jsonpath={.rules}")
    assert "events" in rules
    kubectl_ok("patch", "clusterrole", role, "--type=json", "-p",
               _remove_rule_patch(role, "events"))  # fmt: skip
    try:
        eventually(lambda: "podgate policy rule" in apply(bad_pod("denied", shop)).stderr, 30)
        shown = eventually(
            lambda: (
                "could not create an Event"
                in (p := run_block("events-rbac", tmp_path, errexit=False)).stdout
                and p.stdout
            ),
            timeout=60,
            step=3,
        )
        assert str(shown).splitlines()[0] == "no"
    finally:
        release.install()  # Helm puts the rule back
        assert "events" in kubectl_ok("get", "clusterrole", role, "-o", "jsonpath={.rules}")


def _remove_rule_patch(role: str, resource: str) -> str:
    rules = json.loads(kubectl_ok("get", "clusterrole", role, "-o", "jsonpath={.rules}"))
    index = next(i for i, r in enumerate(rules) if resource in r.get("resources", []))
    return json.dumps([{"op": "remove", "path": f"/rules/{index}"}])


def test_every_node_block_is_run_by_a_test() -> None:
    assert set(BY_ID) - RUN == set(), "node: blocks that no test declares"
    assert RUN - set(BY_ID) == set(), "declared blocks the docs do not have"
