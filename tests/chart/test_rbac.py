"""Least privilege: what each ServiceAccount may do, evaluated like the API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm import NAME, SCENARIOS, Obj, Rendered, render, scenario

ROLE_KINDS = ("ClusterRole", "Role")
WORKLOADS = [
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
]


def _rules_of(rendered: Rendered, service_account: str) -> list[tuple[str, Obj]]:
    """(scope, rule) for every rule bound to a ServiceAccount; scope is "" or a namespace."""
    out: list[tuple[str, Obj]] = []
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == service_account
            and s["namespace"] == rendered.namespace
            for s in binding["subjects"]
        ):
            continue
        ref = binding["roleRef"]
        role = rendered.get(ref["kind"], ref["name"])
        scope = "" if binding["kind"] == "ClusterRoleBinding" else binding["metadata"]["namespace"]
        out += [(scope, rule) for rule in role["rules"]]
    return out


def can(
    rendered: Rendered,
    service_account: str,
    verb: str,
    group: str,
    resource: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
) -> bool:
    """RBAC authorization of one request (no wildcards exist; a test checks that)."""
    for scope, rule in _rules_of(rendered, service_account):
        if scope and scope != namespace:
            continue
        if verb not in rule["verbs"] or group not in rule["apiGroups"]:
            continue
        if resource not in rule["resources"]:
            continue
        names = rule.get("resourceNames")
        if names and name not in names:
            continue
        return True
    return False


def _service_account(rendered: Rendered, component: str) -> str:
    deployment = rendered.by_component("Deployment", component)
    name: str = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert rendered.has("ServiceAccount", name)
    return name


@pytest.mark.parametrize("values", SCENARIOS)
def test_no_wildcards_and_nothing_cluster_admin(values: Path) -> None:
    rendered = render([values])
    for kind in ROLE_KINDS:
        for role in rendered.of_kind(kind):
            assert "aggregationRule" not in role
            for rule in role["rules"]:
                for field in ("verbs", "resources", "apiGroups", "resourceNames"):
                    assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
                assert "nonResourceURLs" not in rule
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    own_roles = {
        (r["kind"], r["metadata"]["name"]) for k in ROLE_KINDS for r in rendered.of_kind(k)
    }
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        ref = binding["roleRef"]
        assert (ref["kind"], ref["name"]) in own_roles, "bound to a role the chart does not own"


@pytest.mark.parametrize("values", SCENARIOS)
def test_webhook_configuration_and_secret_rules_are_pinned_by_name(values: Path) -> None:
    rendered = render([values])
    for kind in ROLE_KINDS:
        for role in rendered.of_kind(kind):
            for rule in role["rules"]:
                if set(rule["resources"]) & {
                    "validatingwebhookconfigurations",
                    "mutatingwebhookconfigurations",
                }:
                    assert rule["resourceNames"] == [NAME], rule
                if "secrets" in rule["resources"]:
                    assert kind == "Role", "no cluster-wide access to Secrets"
                    if set(rule["verbs"]) - {"create"}:
                        assert rule["resourceNames"] == [f"{NAME}-tls"], rule


def test_webhook_service_account() -> None:
    rendered = render()
    sa = _service_account(rendered, "webhook")
    ns = rendered.namespace
    for verb in ("list", "watch"):
        assert can(rendered, sa, verb, "networking.k8s.io", "networkpolicies")
        assert can(rendered, sa, verb, "", "namespaces")
    for verb in ("create", "patch"):
        assert can(rendered, sa, verb, "", "events", namespace="default")
    # only the verbs podgate's calls use (webhook/cluster/webhook_configs.py): read, then patch
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        for verb in ("get", "patch"):
            assert can(rendered, sa, verb, "admissionregistration.k8s.io", kind, name=NAME)
            assert not can(rendered, sa, verb, "admissionregistration.k8s.io", kind, name="other")
        for verb in ("update", "delete"):
            assert not can(rendered, sa, verb, "admissionregistration.k8s.io", kind, name=NAME)
        assert not can(rendered, sa, "create", "admissionregistration.k8s.io", kind)
    for verb in ("get", "update"):  # read, then replaced whole
        assert can(rendered, sa, verb, "", "secrets", namespace=ns, name=f"{NAME}-tls")
        assert not can(rendered, sa, verb, "", "secrets", namespace=ns, name="other")
        assert not can(rendered, sa, verb, "", "secrets", namespace="default", name=f"{NAME}-tls")
    assert not can(rendered, sa, "patch", "", "secrets", namespace=ns, name=f"{NAME}-tls")
    # create cannot be restricted by resourceNames; it stays in the release namespace.
    assert can(rendered, sa, "create", "", "secrets", namespace=ns)
    assert not can(rendered, sa, "create", "", "secrets", namespace="default")
    assert not can(rendered, sa, "list", "", "secrets", namespace=ns)
    assert not can(rendered, sa, "get", "", "pods", namespace="default")
    assert not can(rendered, sa, "get", "", "namespaces", name="default")
    # a review is answered from the request alone: no workload is read
    for group, resource in [("apps", "replicasets"), ("apps", "deployments"), ("batch", "jobs"),
                            ("", "replicationcontrollers"), ("", "pods")]:  # fmt: skip
        for verb in ("get", "list", "watch", "update", "patch", "delete"):
            assert not can(rendered, sa, verb, group, resource, namespace="default")
    assert not can(rendered, sa, "get", "", "configmaps", namespace="default")


@pytest.mark.parametrize("name", ["cert-manager", "provided-certs"])
def test_webhook_cannot_touch_configurations_or_secrets_when_it_does_not_manage_certs(
    name: str,
) -> None:
    rendered = render([scenario(name)])
    sa = _service_account(rendered, "webhook")
    for verb in ("get", "update", "patch", "create"):
        assert not can(
            rendered, sa, verb, "", "secrets", namespace=rendered.namespace, name=f"{NAME}-tls"
        )
        assert not can(
            rendered,
            sa,
            verb,
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            name=NAME,
        )
    assert can(rendered, sa, "watch", "networking.k8s.io", "networkpolicies")


def test_audit_service_account() -> None:
    rendered = render()
    sa = _service_account(rendered, "audit")
    for group, resource in [
        *WORKLOADS,
        ("", "namespaces"),
        ("networking.k8s.io", "networkpolicies"),
    ]:
        for verb in ("get", "list", "watch"):
            assert can(rendered, sa, verb, group, resource, namespace="default"), resource
        for verb in ("create", "update", "patch", "delete"):
            assert not can(rendered, sa, verb, group, resource, namespace="default"), resource
    assert can(rendered, sa, "create", "", "events", namespace="default")
    assert can(rendered, sa, "patch", "", "events", namespace="default")
    lease = "podgate-audit"  # podgate's fixed Lease name (webhook/audit/lease.py)
    for verb in ("get", "update"):
        assert can(
            rendered,
            sa,
            verb,
            "coordination.k8s.io",
            "leases",
            namespace=rendered.namespace,
            name=lease,
        )
        assert not can(
            rendered,
            sa,
            verb,
            "coordination.k8s.io",
            "leases",
            namespace=rendered.namespace,
            name="kube-scheduler",
        )
    assert can(
        rendered, sa, "create", "coordination.k8s.io", "leases", namespace=rendered.namespace
    )
    assert not can(rendered, sa, "create", "coordination.k8s.io", "leases", namespace="kube-system")
    assert not can(
        rendered, sa, "get", "", "secrets", namespace=rendered.namespace, name=f"{NAME}-tls"
    )
    assert not can(rendered, sa, "create", "wgpolicyk8s.io", "policyreports", namespace="default")

    reports = render([scenario("audit-mode")])
    audit = _service_account(reports, "audit")
    group, resource = "wgpolicyk8s.io", "policyreports"
    assert can(reports, audit, "create", group, resource, namespace="default")
    assert can(reports, audit, "list", group, resource)  # the reports an earlier leader wrote
    for verb in ("get", "update"):
        assert can(reports, audit, verb, group, resource, namespace="default", name=lease)
        assert not can(reports, audit, verb, group, resource, namespace="default", name="other")
    for verb in ("patch", "delete"):  # never used
        assert not can(reports, audit, verb, group, resource, namespace="default", name=lease)


def test_url_mode_renders_no_rbac_for_an_absent_webhook() -> None:
    rendered = render([scenario("out-of-cluster-url")])
    assert not rendered.of_kind("ClusterRole")
    assert not rendered.of_kind("ServiceAccount")


def test_rbac_can_be_left_to_the_operator() -> None:
    rendered = render(sets=["rbac.create=false"])
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not [
            o
            for o in rendered.of_kind(kind)
            if "helm.sh/hook" not in o["metadata"].get("annotations", {})
        ], kind
