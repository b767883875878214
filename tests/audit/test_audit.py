"""The audit, with a fake at its only cluster seam (ClusterReader)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from policies.config import load_config
from webhook.audit.findings import AuditState, Finding
from webhook.audit.lease import LeaseElector
from webhook.audit.reports import policy_reports
from webhook.audit.scan import scan
from webhook.audit.watch import Auditor
from webhook.cli.audit import report_of
from webhook.cli.code_scanning import to_sarif
from webhook.cli.formats import render
from webhook.cli.report import to_json
from webhook.cluster.reader import AUDITED, AuditedKind
from webhook.telemetry.events import EventRecorder, ViolationEvent

DIGEST = "sha256:" + "ab" * 32


def pod_spec(good: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if good:
        container = {
            "name": "app",
            "image": f"nginx@{DIGEST}",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
            "livenessProbe": {"tcpSocket": {"port": 80}},
            "readinessProbe": {"tcpSocket": {"port": 80}},
        }
    return {"securityContext": {"runAsNonRoot": True}, "containers": [container]}


def meta(name: str, ns: str = "shop", owner: tuple[str, str] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "uid": f"uid-{ns}-{name}",
        "labels": {"app": name},
    }
    if owner:
        m["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": "x",
                "controller": True,
            }
        ]
    return m


def deployment(name: str, good: bool) -> dict[str, Any]:
    return {
        "metadata": meta(name),
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(good)},
        },
    }


class FakeCluster:
    """Lists as the API server does: items without kind, in pages with continue."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str | None, int]] = []

    def pages(
        self, kind: AuditedKind, namespace: str | None, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        # a namespace's own Namespace is read by its name
        key = "name" if kind.kind == "Namespace" else "namespace"
        items = [
            {**copy.deepcopy(o), "apiVersion": kind.api_version, "kind": kind.kind}
            for o in self.objects.get(kind.kind, [])
            if namespace is None or o["metadata"].get(key) == namespace
        ]
        for start in range(0, max(len(items), 1), page_size):
            self.calls.append((kind.kind, namespace, start))
            yield items[start : start + page_size]


def cluster() -> FakeCluster:
    return FakeCluster(
        {
            "Deployment": [deployment("web", good=False), deployment("api", good=True)],
            "ReplicaSet": [
                {
                    "metadata": meta("web-5d8f", owner=("Deployment", "web")),
                    "spec": {"template": {"spec": pod_spec(False)}},
                },
                {"metadata": meta("orphan"), "spec": {"template": {"spec": pod_spec(False)}}},
            ],
            "Pod": [
                {
                    "metadata": meta(f"web-5d8f-{i}", owner=("ReplicaSet", "web-5d8f")),
                    "spec": pod_spec(False),
                }
                for i in range(5)
            ]
            + [{"metadata": meta("bare", ns="tools"), "spec": pod_spec(False)}],
            "NetworkPolicy": [
                {"metadata": {"name": "all", "namespace": "shop"}, "spec": {"podSelector": {}}}
            ],
            "Namespace": [
                {"metadata": {"name": "shop"}},
                {"metadata": {"name": "tools", "labels": {"podgate.dev/mode": "audit"}}},
            ],
        }
    )


def test_pods_of_workloads_are_reported_once_at_the_workload() -> None:
    report = report_of(cluster(), load_config(), namespace=None, page_size=2)
    failing = {str(c.resource) for c in report.checked if any(r.failed for r in c.results)}
    assert failing == {"Deployment shop/web", "ReplicaSet shop/orphan", "Pod tools/bare"}
    assert "Deployment shop/api" not in failing


def test_exit_code_follows_check_and_namespace_mode_applies() -> None:
    config = load_config()
    report = report_of(cluster(), config, namespace=None, page_size=100)
    assert report.exit_code == 1
    tools = report_of(cluster(), config, namespace="tools", page_size=100)
    assert tools.exit_code == 0, "tools is labelled podgate.dev/mode=audit"
    data = json.loads(to_json(tools, config))
    assert {r["resource"]["name"] for r in data["results"]} == {"bare"}
    # where a finding comes from: the object of the cluster, not a file
    assert {json.dumps(r["source"]) for r in data["results"]} == {
        json.dumps({"cluster": True, "uid": "uid-tools-bare"})
    }
    failing = [r for r in data["results"] if r["result"] == "fail"]
    assert failing
    assert all(r["action"] == "warn" for r in failing)


def test_network_policies_of_the_cluster_are_the_context() -> None:
    report = report_of(cluster(), load_config(), namespace="shop", page_size=100)
    netpol = [r for c in report.checked for r in c.results if r.policy == "require-network-policy"]
    assert netpol
    assert all(r.outcome == "pass" for r in netpol)


def test_lists_in_pages() -> None:
    fake = cluster()
    done = scan(fake, load_config(), lambda obj, d: None, page_size=2)
    assert done.seen["Pod"] == 6
    assert [c for c in fake.calls if c[0] == "Pod"] == [
        ("Pod", None, 0),
        ("Pod", None, 2),
        ("Pod", None, 4),
    ]


def gauge(policy: str, namespace: str, action: str) -> float | None:
    return REGISTRY.get_sample_value(
        "podgate_audit_violations", {"policy": policy, "namespace": namespace, "action": action}
    )


def finding(uid: str, ns: str, *failures: tuple[str, str]) -> Finding:
    """A finding outside audit mode: what is denied is what is configured to deny."""
    required = frozenset(policy for policy, action in failures if action == "deny")
    return Finding(ns, "Pod", uid, "v1", uid, tuple(failures), (("any", "msg"),), required)


def test_state_keeps_gauges_in_step() -> None:
    state = AuditState()
    state.update("a", finding("a", "g1", ("p1", "deny"), ("p2", "warn")))
    state.update("b", finding("b", "g1", ("p1", "deny")))
    assert gauge("p1", "g1", "deny") == 2
    assert gauge("p2", "g1", "warn") == 1
    assert state.update("a", None) is True
    assert gauge("p1", "g1", "deny") == 1
    assert gauge("p2", "g1", "warn") is None, "a label set at zero is removed"
    fresh = state.replace_all({"c": finding("c", "g2", ("p1", "audit"))})
    assert [f.uid for f in fresh] == ["c"]
    assert gauge("p1", "g1", "deny") is None
    assert gauge("p1", "g2", "audit") == 1
    assert len(state) == 1


class ListSink:
    def __init__(self) -> None:
        self.created: list[ViolationEvent] = []

    def create(self, event: ViolationEvent, count: int, first: dt.datetime) -> str:
        self.created.append(event)
        return f"e{len(self.created)}"

    def update_count(self, namespace: str, name: str, count: int, last: dt.datetime) -> None:
        pass


def test_auditor_events_only_on_change_and_deletes_forget() -> None:
    sink = ListSink()
    recorder = EventRecorder(sink)
    fake = cluster()
    auditor = Auditor(load_config(), _context(fake), fake, recorder)
    web = {**deployment("web", good=False), "apiVersion": "apps/v1", "kind": "Deployment"}
    assert auditor.observe("ADDED", web) is not None
    auditor.observe("MODIFIED", web)  # same findings: no second event
    assert recorder.drain() == 1
    assert sink.created[0].involved.kind == "Deployment"
    assert "require-probes" in sink.created[0].policies
    assert sink.created[0].action == "Audited"  # nothing was denied: it would be
    assert " would be denied: " in sink.created[0].message
    auditor.observe("DELETED", web)
    assert len(auditor.state) == 0
    owned = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("x", owner=("ReplicaSet", "r")),
        "spec": pod_spec(False),
    }
    assert auditor.observe("ADDED", owned) is None


def _context(fake: FakeCluster) -> Any:
    from webhook.audit.scan import cluster_context

    return cluster_context(fake, 100)


def test_full_pass_reports_new_findings_and_sets_pass_metrics() -> None:
    sink = ListSink()
    recorder = EventRecorder(sink)
    fake = cluster()
    passes: list[int] = []
    auditor = Auditor(
        load_config(),
        _context(fake),
        fake,
        recorder,
        on_pass=lambda findings: passes.append(len(findings)),
    )
    auditor.full_pass()
    assert passes == [3]
    assert recorder.drain() == 3
    auditor.full_pass()
    assert recorder.drain() == 0, "nothing new on the second pass"
    assert REGISTRY.get_sample_value("podgate_audit_objects", {"kind": "Pod"}) == 6
    assert (REGISTRY.get_sample_value("podgate_audit_last_full_pass_timestamp_seconds") or 0) > 0


class FakeLeases:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0

    def get(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def create(self, body: dict[str, Any]) -> bool:
        if self.lease is not None:
            return False
        self.version += 1
        self.lease = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
        }
        return True

    def replace(self, body: dict[str, Any]) -> bool:
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            return False
        self.version += 1
        self.lease = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
        }
        return True


def test_lease_single_active_instance_and_takeover_after_expiry() -> None:
    now = [1_000_000.0]
    store = FakeLeases()
    a = LeaseElector(store, "a", duration_s=15, clock=lambda: now[0])
    b = LeaseElector(store, "b", duration_s=15, clock=lambda: now[0])
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew(), "a holds a fresh lease"
    now[0] += 10
    assert a.try_acquire_or_renew(), "renewal"
    now[0] += 10
    assert not b.try_acquire_or_renew(), "renewed 10 s ago: still a's"
    assert a.holds()
    now[0] += 20  # a went away and did not renew
    assert not a.holds()
    assert b.try_acquire_or_renew(), "expired: b takes over"
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_stale_write_loses_the_race() -> None:
    store = FakeLeases()
    now = [0.0]
    a = LeaseElector(store, "a", duration_s=15, clock=lambda: now[0])
    assert a.try_acquire_or_renew()
    stale = store.get()
    assert stale is not None
    assert a.try_acquire_or_renew()  # the version moves on
    assert not store.replace(stale)


@pytest.mark.parametrize("action", ["deny", "warn"])
def test_policy_reports_one_per_namespace(action: str) -> None:
    reports = policy_reports(
        [
            finding("a", "n1", ("p1", action)),
            finding("b", "n1", ("p2", action)),
            finding("c", "n2", ("p1", action)),
        ],
        {"p1": "high"},
    )
    assert sorted(reports) == ["n1", "n2"]
    n1 = reports["n1"]
    assert n1["kind"] == "PolicyReport"
    assert n1["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    assert len(n1["results"]) == 2
    expected = "fail" if action == "deny" else "warn"
    assert n1["summary"][expected] == 2
    assert n1["results"][0]["severity"] == "high"


def test_release_hands_the_lease_over_at_once() -> None:
    now = [1_000_000.0]
    store = FakeLeases()
    a = LeaseElector(store, "a", duration_s=15, clock=lambda: now[0])
    b = LeaseElector(store, "b", duration_s=15, clock=lambda: now[0])
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.holds()
    assert b.try_acquire_or_renew(), "no need to wait 15 s for the Lease to expire"
    b.release()
    a.release()  # not the holder: a no-op
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] is None


def test_a_missing_kubeconfig_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from webhook.cli.main import main

    assert main(["audit", "--kubeconfig", "/nonexistent/kubeconfig"]) == 2
    assert capsys.readouterr().err.startswith(
        "podgate audit: cannot load the kubeconfig (/nonexistent/kubeconfig): "
    )


def test_a_workload_controlled_by_a_custom_resource_is_reported_on_itself() -> None:
    """A Knative Revision's Deployment: the engine leaves it to its controller,
    which podgate does not audit, and its ReplicaSet and Pods are left to it."""
    owned = deployment("ksvc", good=False)
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "serving.knative.dev/v1", "kind": "Revision", "name": "r",
         "uid": "rev", "controller": True}
    ]  # fmt: skip
    fake = FakeCluster(
        {
            "Deployment": [owned],
            "ReplicaSet": [
                {
                    "metadata": meta("ksvc-1", owner=("Deployment", "ksvc")),
                    "spec": {"template": {"spec": pod_spec(False)}},
                }
            ],
            "Pod": [
                {
                    "metadata": meta("ksvc-1-a", owner=("ReplicaSet", "ksvc-1")),
                    "spec": pod_spec(False),
                }
            ],
            "Namespace": [{"metadata": {"name": "shop"}}],
        }
    )
    report = report_of(fake, load_config(), namespace=None, page_size=10)
    failing = {str(c.resource) for c in report.checked if any(r.failed for r in c.results)}
    assert failing == {"Deployment shop/ksvc"}


class Forbidding(FakeCluster):
    def __init__(self, objects: dict[str, list[dict[str, Any]]], refused: set[str]) -> None:
        super().__init__(objects)
        self.refused = refused

    def pages(
        self, kind: AuditedKind, namespace: str | None, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        if kind.kind in self.refused:
            raise PermissionError(f"{kind.plural} is forbidden")
        yield from super().pages(kind, namespace, page_size)


def test_a_kind_that_may_not_be_listed_is_named_and_the_others_audited() -> None:
    fake = Forbidding(cluster().objects, {"CronJob"})
    report = report_of(fake, load_config(), namespace=None, page_size=10)
    assert report.checked, "Deployments, Pods... are still audited"
    assert [(u.file, u.reason) for u in report.unreadable] == [
        ("cluster cronjobs", "PermissionError: cronjobs is forbidden")
    ]
    assert report.exit_code == 2
    everything = {k.kind for k in AUDITED}
    with pytest.raises(PermissionError):  # the cluster, not one kind: one error
        report_of(Forbidding(cluster().objects, everything), load_config(), namespace=None,
                  page_size=10)  # fmt: skip


def test_network_policies_unreadable_skip_the_policy_that_needs_them() -> None:
    fake = Forbidding(cluster().objects, {"NetworkPolicy"})
    report = report_of(fake, load_config(), namespace="shop", page_size=10)
    netpol = [r for c in report.checked for r in c.results if r.policy == "require-network-policy"]
    assert netpol
    assert all(r.outcome == "skip" for r in netpol)
    assert [u.file for u in report.unreadable] == ["cluster networkpolicies"]


def test_a_namespaced_audit_reads_only_its_namespace() -> None:
    fake = cluster()
    report_of(fake, load_config(), namespace="shop", page_size=10)
    assert {ns for _, ns, _ in fake.calls} == {"shop"}


def test_a_full_pass_keeps_what_it_knew_of_a_kind_it_could_not_list() -> None:
    fake = Forbidding(cluster().objects, set())
    auditor = Auditor(load_config(), _context(fake), fake, None)
    auditor.full_pass()
    known = {f.kind for f in auditor.state.findings()}
    assert "Deployment" in known
    fake.refused = {"Deployment"}
    auditor.full_pass()
    assert {f.kind for f in auditor.state.findings()} == known, "not listed is not fixed"


def test_sarif_names_a_cluster_object_without_a_line() -> None:
    report = report_of(cluster(), load_config(), namespace=None, page_size=10)
    sarif = json.loads(to_sarif(report, load_config()))
    locations = [loc for r in sarif["runs"][0]["results"] for loc in r["locations"]]
    assert locations
    assert all("physicalLocation" not in loc for loc in locations)  # SARIF lines start at 1
    names = {loc["logicalLocations"][0]["fullyQualifiedName"] for loc in locations}
    assert "Deployment shop/web" in names


def test_watch_refuses_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    from webhook.cli.main import main

    assert main(["audit", "--watch", "--namespace", "shop"]) == 2
    assert "--namespace is not supported with --watch" in capsys.readouterr().err


def test_a_deletion_seen_while_a_full_pass_runs_is_not_undone_by_it() -> None:
    """The pass lists Deployments; kopf then delivers the deletion of one while
    the Pods are listed; the pass's snapshot must not bring it back."""
    sink = ListSink()
    recorder = EventRecorder(sink)
    fake = cluster()
    auditor = Auditor(load_config(), _context(fake), fake, recorder)
    web = {**deployment("web", good=False), "apiVersion": "apps/v1", "kind": "Deployment"}
    auditor.observe("ADDED", web)
    recorder.drain()
    pages = fake.pages

    def pages_with_a_deletion(kind: AuditedKind, ns: str | None, size: int) -> Any:
        if kind.kind == "Pod":
            auditor.observe("DELETED", web)
        return pages(kind, ns, size)

    fake.pages = pages_with_a_deletion  # type: ignore[method-assign,assignment]
    auditor.full_pass()
    assert auditor.state.get(web["metadata"]["uid"]) is None
    assert recorder.drain() == 2  # the other two findings, nothing for the deleted one
    assert all(e.involved.name != "web" for e in sink.created[1:])


def test_an_exempt_workload_is_listed_as_check_lists_it() -> None:
    fake = cluster()
    system = deployment("dns", good=False)
    system["metadata"]["namespace"] = "kube-system"
    fake.objects["Deployment"].append(system)
    report = report_of(fake, load_config(), namespace=None, page_size=10)
    text = render(report, load_config(), "text", colour=False, verbose=True)
    assert (
        "Deployment kube-system/dns\n  EXEMPT      not evaluated: namespace kube-system is exempt"
        in text
    )
    assert text.splitlines()[-1].startswith("5 objects, 4 evaluated, ")
    assert text.splitlines()[-1].endswith("; 1 workload exempt")


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("--page-size=0", "0 is not between 1 and 10000"),
        ("--page-size=-1", "-1 is not between 1 and 10000"),
        ("--resync-seconds=0", "0 is not between 1 second and a day"),
        ("--resync-seconds=nan", "nan is not between 1 second and a day"),
        ("--resync-seconds=inf", "inf is not between 1 second and a day"),
    ],
)
def test_audit_options_out_of_range_are_refused(
    option: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from webhook.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["audit", option])
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


def test_a_pod_of_a_custom_job_kind_is_reported() -> None:
    """A Volcano `batch.volcano.sh` Job is not a batch/v1 Job the audit scans."""
    fake = cluster()
    volcano = {
        "metadata": meta("train-0", ns="shop"),
        "spec": pod_spec(False),
    }
    volcano["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "name": "train",
         "uid": "vj", "controller": True}
    ]  # fmt: skip
    fake.objects["Pod"].append(volcano)
    report = report_of(fake, load_config(), namespace=None, page_size=10)
    assert "Pod shop/train-0" in {str(c.resource) for c in report.checked}


def test_a_full_pass_judges_with_the_watchs_context_not_a_list_of_its_own() -> None:
    """A Namespaces list failing for one pass must not lose the labels
    (`podgate.dev/mode: audit` on tools) and turn its warnings into denials."""
    fake = Forbidding(cluster().objects, set())
    auditor = Auditor(load_config(), _context(fake), fake, None)
    auditor.full_pass()
    before = {f.uid: f.failures for f in auditor.state.findings()}
    fake.refused = {"Namespace", "NetworkPolicy"}
    auditor.full_pass()
    assert {f.uid: f.failures for f in auditor.state.findings()} == before
    assert not [c for c in fake.calls if c[0] in ("Namespace", "NetworkPolicy")][2:]
