"""PolicyReports written by `audit --watch`: per-policy messages, emptied when a
namespace is clean again, one failing namespace not stopping the others."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from policies.config import load_config
from policies.engine import evaluate
from tests.audit.test_audit import cluster, deployment
from webhook.audit.findings import Finding, finding_of
from webhook.audit.reports import policy_reports
from webhook.audit.scan import cluster_context
from webhook.cluster.policy_reports import existing_policy_reports, write_policy_reports


def test_a_result_carries_its_own_policys_message() -> None:
    web = {**deployment("web", good=False), "apiVersion": "apps/v1", "kind": "Deployment"}
    containers = web["spec"]["template"]["spec"]["containers"]
    containers += [{**containers[0], "name": f"side{i}"} for i in range(4)]
    ctx = cluster_context(cluster(), 100)
    found = finding_of(web, evaluate(web, ctx, load_config(), mutate=False))
    assert found is not None
    results = policy_reports([found], {})["shop"]["results"]
    digest = next(r for r in results if r["policy"] == "require-image-digest")
    # the whole object's message, cut at 1024, lost the digest text behind the others'
    assert "require-resources" not in digest["message"]
    assert "uses tag" in digest["message"]


def test_what_enforcement_would_refuse_is_a_failure_even_in_audit_mode(tmp_path: Any) -> None:
    # In audit mode a deny policy only warns, yet its report result says the
    # object fails it: the report shows what switching to enforce would refuse.
    config_file = tmp_path / "audit.yaml"
    config_file.write_text(
        "enforcement: audit\npolicies: {require-network-policy: {action: warn}}\n"
    )
    web = {**deployment("web", good=False), "apiVersion": "apps/v1", "kind": "Deployment"}
    context = cluster_context(cluster(), 100)
    found = finding_of(web, evaluate(web, context, load_config(config_file), mutate=False))
    assert found is not None
    assert all(action != "deny" for _, action in found.failures)
    results = {r["policy"]: r["result"] for r in policy_reports([found], {})["shop"]["results"]}
    assert results["require-probes"] == "fail"
    assert results["require-image-digest"] == "fail"


class FakeCustomObjects:
    store: ClassVar[dict[str, dict[str, Any]]] = {}
    refuse: ClassVar[set[str]] = set()

    def __init__(self, _client: Any = None) -> None:
        pass

    def get_namespaced_custom_object(self, g: str, v: str, ns: str, p: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        if ns not in self.store:
            raise ApiException(status=404)
        return self.store[ns]

    def replace_namespaced_custom_object(
        self, g: str, v: str, ns: str, p: str, name: str, body: Any
    ) -> None:
        self.store[ns] = body

    def create_namespaced_custom_object(self, g: str, v: str, ns: str, p: str, body: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        if ns in self.refuse:
            exc = ApiException(status=500)
            exc.body = '{"message": "etcdserver: request is too large"}'
            raise exc
        body["metadata"]["resourceVersion"] = "1"
        self.store[ns] = body

    def list_cluster_custom_object(self, g: str, v: str, p: str, field_selector: str) -> Any:
        assert field_selector == "metadata.name=podgate-audit"
        return {"items": list(self.store.values())}


@pytest.fixture
def custom_objects(monkeypatch: pytest.MonkeyPatch) -> type[FakeCustomObjects]:
    from kubernetes import client

    FakeCustomObjects.store, FakeCustomObjects.refuse = {}, set()
    monkeypatch.setattr(client, "CustomObjectsApi", FakeCustomObjects)
    return FakeCustomObjects


def _finding(namespace: str) -> Finding:
    failures = (("require-probes", "deny"),)
    return Finding(
        namespace, "Pod", "p", "v1", f"u-{namespace}", failures, (("require-probes", "m"),),
        frozenset({"require-probes"}),
    )  # fmt: skip


def test_the_report_of_a_namespace_that_became_clean_is_emptied(
    custom_objects: type[FakeCustomObjects],
) -> None:
    write_policy_reports(None, policy_reports([_finding("shop")], {}))
    assert custom_objects.store["shop"]["summary"]["fail"] == 1
    # the Pod was fixed or deleted: the namespace reported before gets an empty report
    write_policy_reports(None, policy_reports([], {}, ["shop"]))
    assert custom_objects.store["shop"]["summary"]["fail"] == 0
    assert custom_objects.store["shop"]["results"] == []


def test_a_report_refused_does_not_stop_the_other_namespaces(
    custom_objects: type[FakeCustomObjects], caplog: pytest.LogCaptureFixture
) -> None:
    custom_objects.refuse = {"aaa-big"}
    reports = policy_reports([_finding("aaa-big"), _finding("legacy")], {})
    assert write_policy_reports(None, reports) == ["aaa-big"]
    assert "legacy" in custom_objects.store
    assert (
        "could not write the PolicyReport of namespace aaa-big: "
        "HTTP 500: etcdserver: request is too large"
    ) in caplog.text


def test_a_clean_namespace_without_a_report_gets_none(
    custom_objects: type[FakeCustomObjects],
) -> None:
    # reported before, its report (or the namespace) gone since: nothing to
    # empty, and no failure to retry at every pass
    assert write_policy_reports(None, policy_reports([], {}, ["gone"])) == []
    assert custom_objects.store == {}


def test_a_new_leader_finds_the_reports_an_earlier_one_wrote(
    custom_objects: type[FakeCustomObjects],
) -> None:
    write_policy_reports(None, policy_reports([_finding("shop"), _finding("legacy")], {}))
    write_policy_reports(None, policy_reports([_finding("shop")], {}, ["legacy"]))
    assert existing_policy_reports(None) == {"shop"}  # legacy's is empty now
