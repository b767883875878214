"""The webhook configurations: selectors, policies, rules, and where they call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm import (
    NAME,
    SCENARIOS,
    Obj,
    Rendered,
    container,
    flags,
    render,
    scenario,
    template,
)

CA = (
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmakNDQVNTZ0F3SUJBZ0lVRXhhbXBsZQotLS0tLUVO"
    "RCBDRVJUSUZJQ0FURS0tLS0tCg=="
)


def _webhooks(rendered: Rendered) -> list[Obj]:
    return [w for c in rendered.webhook_configurations() for w in c["webhooks"]]


def _validating(rendered: Rendered) -> Obj:
    hooks: list[Obj] = rendered.get("ValidatingWebhookConfiguration", NAME)["webhooks"]
    assert len(hooks) == 1
    return hooks[0]


def _mutating(rendered: Rendered) -> Obj:
    hooks: list[Obj] = rendered.get("MutatingWebhookConfiguration", NAME)["webhooks"]
    assert len(hooks) == 1
    return hooks[0]


def _covered(hook: Obj) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, operation) triples a webhook's rules match."""
    return {
        (group, resource, op)
        for rule in hook["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for op in rule["operations"]
    }


WORKLOADS = {
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}


@pytest.mark.parametrize("values", SCENARIOS)
def test_namespace_selector_always_excludes_own_kube_system_and_ignored(values: Path) -> None:
    for namespace in ("podgate-system", "security"):
        rendered = render([values], namespace=namespace)
        hooks = _webhooks(rendered)
        assert hooks
        for hook in hooks:
            expressions = hook["namespaceSelector"]["matchExpressions"]
            by_key = {e["key"]: e for e in expressions}
            names = by_key["kubernetes.io/metadata.name"]
            assert names["operator"] == "NotIn"
            assert {namespace, "kube-system"} <= set(names["values"])
            assert by_key["podgate.dev/ignore"]["operator"] == "DoesNotExist"
            assert "values" not in by_key["podgate.dev/ignore"]


@pytest.mark.parametrize("values", SCENARIOS)
def test_common_webhook_settings(values: Path) -> None:
    for hook in _webhooks(render([values])):
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert 1 <= hook["timeoutSeconds"] <= 30
        assert hook["failurePolicy"] in ("Fail", "Ignore")
        assert hook["name"].count(".") >= 2  # API validation: a fully qualified name
        assert all(rule["scope"] == "Namespaced" for rule in hook["rules"])


def test_defaults_fail_closed_validating_open_mutating() -> None:
    rendered = render()
    validating, mutating = _validating(rendered), _mutating(rendered)
    assert (validating["failurePolicy"], validating["timeoutSeconds"]) == ("Fail", 5)
    assert (mutating["failurePolicy"], mutating["timeoutSeconds"]) == ("Ignore", 3)
    assert mutating["reinvocationPolicy"] == "IfNeeded"
    assert "reinvocationPolicy" not in validating
    assert validating["clientConfig"]["service"]["path"] == "/validate"
    assert mutating["clientConfig"]["service"]["path"] == "/mutate"


def test_rules_cover_pods_ephemeral_containers_and_workloads() -> None:
    rendered = render()
    validating = _covered(_validating(rendered))
    for group, resource in {("", "pods"), *WORKLOADS}:
        assert {(group, resource, "CREATE"), (group, resource, "UPDATE")} <= validating
    assert ("", "pods/ephemeralcontainers", "UPDATE") in validating
    assert not {t for t in validating if t[2] in ("DELETE", "CONNECT", "*")}

    mutating = _covered(_mutating(rendered))
    for group, resource in WORKLOADS:
        assert {(group, resource, "CREATE"), (group, resource, "UPDATE")} <= mutating
    # A Pod's spec is immutable: defaults are injected when it is created only.
    assert {t for t in mutating if t[1] == "pods"} == {("", "pods", "CREATE")}
    assert not {t for t in mutating if t[1].startswith("pods/")}


def test_in_cluster_client_config_reaches_the_webhook_container() -> None:
    rendered = render()
    service = rendered.get("Service", NAME)
    deployment = rendered.by_component("Deployment", "webhook")
    webhook = container(deployment["spec"]["template"]["spec"])
    for hook in _webhooks(rendered):
        ref = hook["clientConfig"]["service"]
        assert "url" not in hook["clientConfig"]
        assert (ref["name"], ref["namespace"], ref["port"]) == (NAME, rendered.namespace, 443)
        port = next(p for p in service["spec"]["ports"] if p["port"] == ref["port"])
        target = next(p for p in webhook["ports"] if p["name"] == port["targetPort"])
        assert target["containerPort"] == 8443
        assert flags(webhook["args"])["--port"] == "8443"


def test_self_managed_certificates() -> None:
    rendered = render()
    for hook in _webhooks(rendered):
        # Empty under `helm template`: podgate patches it in at runtime, and on
        # upgrade `lookup` carries over what the live object has.
        assert not hook["clientConfig"].get("caBundle")
    for config in rendered.webhook_configurations():
        assert "cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {})
    spec = rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    webhook = container(spec)
    args = flags(webhook["args"])
    assert "--manage-certs" in args
    assert args["--cert-secret"] == f"{NAME}-tls"
    assert args["--namespace"] == rendered.namespace
    assert args["--service"] == NAME
    assert (
        args["--validating-webhook"]
        == rendered.get("ValidatingWebhookConfiguration")["metadata"]["name"]
    )
    assert (
        args["--mutating-webhook"]
        == rendered.get("MutatingWebhookConfiguration")["metadata"]["name"]
    )
    assert args["--cert-dir"] == "/tmp/certs"
    assert "--cert" not in args
    assert "--key" not in args
    mount = next(m for m in webhook["volumeMounts"] if m["mountPath"] == "/tmp/certs")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume
    assert not rendered.of_kind("Certificate")
    assert not rendered.of_kind("Secret")


def _mounted_tls_secret(rendered: Rendered) -> str:
    spec = rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    webhook = container(spec)
    args = flags(webhook["args"])
    assert (args["--cert"], args["--key"]) == ("/certs/tls.crt", "/certs/tls.key")
    assert "--manage-certs" not in args
    mount = next(m for m in webhook["volumeMounts"] if m["mountPath"] == "/certs")
    assert mount.get("readOnly") is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    secret: str = volume["secret"]["secretName"]
    return secret


def test_cert_manager_certificates() -> None:
    rendered = render([scenario("cert-manager")])
    certificate = rendered.get("Certificate", f"{NAME}-tls")
    assert certificate["spec"]["secretName"] == _mounted_tls_secret(rendered)
    dns = set(certificate["spec"]["dnsNames"])
    assert f"{NAME}.{rendered.namespace}.svc" in dns
    issuer = rendered.get("Issuer", certificate["spec"]["issuerRef"]["name"])
    assert (
        issuer["spec"]["ca"]["secretName"]
        == rendered.get("Certificate", f"{NAME}-ca")["spec"]["secretName"]
    )
    assert rendered.get("Certificate", f"{NAME}-ca")["spec"]["isCA"] is True
    for config in rendered.webhook_configurations():
        inject = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert inject == f"{rendered.namespace}/{certificate['metadata']['name']}"
    for hook in _webhooks(rendered):
        assert not hook["clientConfig"].get("caBundle")


def test_cert_manager_with_an_existing_issuer() -> None:
    rendered = render(
        [scenario("cert-manager")],
        [
            "certificates.certManager.issuerRef.name=corp-ca",
            "certificates.certManager.issuerRef.kind=ClusterIssuer",
        ],
    )
    assert not rendered.of_kind("Issuer")
    ref = rendered.get("Certificate")["spec"]["issuerRef"]
    assert (ref["name"], ref["kind"]) == ("corp-ca", "ClusterIssuer")


def test_provided_certificates() -> None:
    rendered = render([scenario("provided-certs")])
    assert _mounted_tls_secret(rendered) == "my-podgate-tls"
    for hook in _webhooks(rendered):
        assert hook["clientConfig"]["caBundle"] == CA
    for config in rendered.webhook_configurations():
        assert "cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {})
    assert not rendered.of_kind("Certificate")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["certificates.mode=provided"], "certificates.provided.secretName"),
        (
            ["certificates.mode=provided", "certificates.provided.secretName=x"],
            "certificates.provided.caBundle",
        ),
    ],
)
def test_provided_certificates_need_secret_and_ca(sets: list[str], message: str) -> None:
    result = template(sets=sets)
    assert result.returncode != 0
    assert message in result.stderr


def test_out_of_cluster_url_mode() -> None:
    rendered = render([scenario("out-of-cluster-url")])
    paths = {
        "ValidatingWebhookConfiguration": "/validate",
        "MutatingWebhookConfiguration": "/mutate",
    }
    for config in rendered.webhook_configurations():
        for hook in config["webhooks"]:
            client = hook["clientConfig"]
            assert client["url"] == "https://127.0.0.1:9443" + paths[config["kind"]]
            assert "service" not in client
            assert client["caBundle"] == CA
    kinds = {o["kind"] for o in rendered.objects}
    # Nothing that needs a node or a Service: just the config and the registrations.
    assert kinds == {"ConfigMap", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["webhook.url=https://127.0.0.1:9443"], "webhook.caBundle"),
        (["webhook.url=https://127.0.0.1:9443", f"webhook.caBundle={CA}"], "webhook.deploy=false"),
        (["webhook.deploy=false"], "webhook.url"),
    ],
)
def test_url_mode_misconfigurations_are_refused(sets: list[str], message: str) -> None:
    result = template(sets=sets)
    assert result.returncode != 0
    assert message in result.stderr


def test_trailing_slash_in_url_is_not_doubled() -> None:
    rendered = render([scenario("out-of-cluster-url")], ["webhook.url=https://host.example:9443/"])
    assert _validating(rendered)["clientConfig"]["url"] == "https://host.example:9443/validate"


def test_user_selectors_and_conditions_are_added() -> None:
    rendered = render([scenario("everything-optional-enabled")])
    for hook in _webhooks(rendered):
        expressions = hook["namespaceSelector"]["matchExpressions"]
        names = next(e for e in expressions if e["key"] == "kubernetes.io/metadata.name")
        assert {rendered.namespace, "kube-system", "monitoring", "cert-manager"} <= set(
            names["values"]
        )
        assert {"key": "environment", "operator": "In", "values": ["production", "staging"]} in (
            expressions
        )
        assert any(e["key"] == "podgate.dev/ignore" for e in expressions)
        assert hook["objectSelector"]["matchExpressions"][0]["key"] == "podgate.dev/skip"
        assert [c["name"] for c in hook["matchConditions"]] == [
            "changes-the-pod-template",
            "not-node-users",
        ]
    assert _validating(rendered)["timeoutSeconds"] == 8
    assert _mutating(rendered)["reinvocationPolicy"] == "Never"
    for config in rendered.webhook_configurations():
        assert config["metadata"]["annotations"]["example.com/reviewed"] == "true"


def test_mutating_webhook_can_be_disabled() -> None:
    rendered = render(sets=["webhook.mutating.enabled=false"])
    assert not rendered.of_kind("MutatingWebhookConfiguration")
    assert rendered.has("ValidatingWebhookConfiguration", NAME)


@pytest.mark.parametrize("values", SCENARIOS)
def test_updates_that_leave_the_pod_template_alone_are_never_sent(values: Path) -> None:
    """Scaling, relabelling, orphaning: podgate does not judge them, and not
    sent, they work while podgate is down. Pods are always sent."""
    for hook in _webhooks(render([values])):
        first = hook["matchConditions"][0]
        assert first["name"] == "changes-the-pod-template"
        expression = first["expression"]
        assert expression.startswith("request.operation != 'UPDATE' || request.kind.kind == 'Pod'")
        assert "object.spec.template != oldObject.spec.template" in expression
        assert "object.spec.jobTemplate != oldObject.spec.jobTemplate" in expression
