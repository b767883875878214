"""The pods the chart starts: webhook, audit, pre-delete hook, `helm test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helm import (
    NAME,
    SCENARIOS,
    Obj,
    container,
    flags,
    render,
    scenario,
    template,
)


def _webhook_spec(values: list[Path] | None = None, sets: list[str] | None = None) -> Obj:
    rendered = render(values or [], sets or [])
    spec: Obj = rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    return spec


def _effective(pod: Obj, ctr: Obj, key: str) -> object:
    """A securityContext field as the kubelet applies it: container over pod."""
    value = ctr.get("securityContext", {}).get(key)
    return value if value is not None else pod.get("securityContext", {}).get(key)


@pytest.mark.parametrize("values", SCENARIOS)
def test_every_container_runs_restricted(values: Path) -> None:
    rendered = render([values])
    specs = list(rendered.pod_specs())
    for name, spec in specs:
        for ctr in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{ctr['name']}"
            sc = ctr.get("securityContext", {})
            assert _effective(spec, ctr, "runAsNonRoot") is True, where
            uid = _effective(spec, ctr, "runAsUser")
            assert isinstance(uid, int), where
            assert uid > 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged") in (None, False), where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            seccomp = _effective(spec, ctr, "seccompProfile")
            assert isinstance(seccomp, dict), where
            assert seccomp["type"] == "RuntimeDefault", where
            requests = ctr.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= requests.keys(), where
            assert "cpu" not in ctr.get("resources", {}).get("limits", {}), where
            for mount in ctr.get("volumeMounts", []):
                # subPath mounts never see ConfigMap updates.
                assert "subPath" not in mount, where
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], name


def test_webhook_deployment_defaults() -> None:
    rendered = render()
    deployment = rendered.by_component("Deployment", "webhook")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = deployment["spec"]["template"]["spec"]
    terms = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = terms[0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["podAntiAffinity"]
    )
    webhook = container(spec)
    assert webhook["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert "priorityClassName" not in spec


def test_webhook_command_line_contract() -> None:
    webhook = container(_webhook_spec())
    assert webhook["command"] == ["podgate"]
    assert webhook["args"][0] == "serve"
    args = flags(webhook["args"])
    assert args["--config"] == "/etc/podgate/config.yaml"
    assert (args["--port"], args["--metrics-port"], args["--host"]) == ("8443", "8080", "0.0.0.0")
    env = {e["name"]: e for e in webhook["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_self_managed_certificate_lifetime_and_sync_reach_serve(tmp_path: Path) -> None:
    args = flags(container(_webhook_spec())["args"])
    assert (args["--cert-days"], args["--cert-sync-seconds"]) == ("365", "600")
    values = tmp_path / "short.yaml"
    values.write_text("certificates: {selfManaged: {servingCertDays: 0.002, syncSeconds: 3}}\n")
    args = flags(container(_webhook_spec([values]))["args"])
    assert (args["--cert-days"], args["--cert-sync-seconds"]) == ("0.002", "3")
    values.write_text("certificates: {selfManaged: {servingCertDays: 0}}\n")
    refused = template([values])
    assert refused.returncode != 0
    assert "servingCertDays" in refused.stderr


def test_probes_hit_the_health_port() -> None:
    webhook = container(_webhook_spec())
    ports = {p["name"]: p["containerPort"] for p in webhook["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = webhook[probe]["httpGet"]
        assert get["path"] == path
        assert ports[get["port"]] == 8080
        assert get.get("scheme", "HTTP") == "HTTP"


def test_graceful_termination_outlasts_requests() -> None:
    rendered = render()
    spec = rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    args = flags(container(spec)["args"])
    timeouts = [int(h["timeoutSeconds"]) for c in rendered.webhook_configurations()
                for h in c["webhooks"]]  # fmt: skip
    # podgate answers by itself before the API server's timeout...
    assert float(args["--deadline"] or 0) < min(timeouts)
    # ...waits for in-flight requests at least as long as one may take...
    assert float(args["--grace-period"] or 0) >= max(timeouts)
    # ...and the kubelet lets it finish (readiness off first, then drain).
    drain = float(args["--shutdown-delay"] or 0) + float(args["--grace-period"] or 0)
    assert spec["terminationGracePeriodSeconds"] > drain
    assert "lifecycle" not in container(spec)  # no preStop: no shell in the image


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("webhook.terminationGracePeriodSeconds=15", "terminationGracePeriodSeconds"),
        ("webhook.deadlineSeconds=3", "deadlineSeconds"),
        ("webhook.shutdown.gracePeriodSeconds=4", "gracePeriodSeconds"),
    ],
)
def test_shutdown_timings_that_cut_requests_off_are_refused(item: str, named: str) -> None:
    refused = template(sets=[item])
    assert refused.returncode != 0
    assert named in refused.stderr


def test_config_is_mounted_as_a_directory() -> None:
    spec = _webhook_spec()
    webhook = container(spec)
    mount = next(m for m in webhook["volumeMounts"] if m["mountPath"] == "/etc/podgate")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    sources = volume["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == f"{NAME}-config"
    assert sources[0]["configMap"]["items"] == [{"key": "config.yaml", "path": "config.yaml"}]
    tmp = next(m for m in webhook["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])


def test_pdb_only_with_more_than_one_replica() -> None:
    rendered = render()
    pdb = rendered.get("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    labels = rendered.by_component("Deployment", "webhook")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not render([scenario("single-replica")]).of_kind("PodDisruptionBudget")
    assert not render(sets=["webhook.podDisruptionBudget.enabled=false"]).of_kind(
        "PodDisruptionBudget"
    )


@pytest.mark.parametrize("min_available", ["2", "100%", "60%"])
def test_pdb_that_would_block_every_drain_is_refused(min_available: str) -> None:
    # with the default two replicas; a percentage rounds up (60 % of 2 is 2)
    result = template(sets=[f"webhook.podDisruptionBudget.minAvailable={min_available}"])
    assert result.returncode != 0
    assert "minAvailable" in result.stderr
    assert "no node could ever be drained" in result.stderr


def test_optional_scheduling_settings() -> None:
    rendered = render([scenario("everything-optional-enabled")])
    deployment = rendered.by_component("Deployment", "webhook")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    (constraint,) = spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["labelSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    webhook = container(spec)
    assert webhook["image"].startswith("ghcr.io/podgate/podgate@sha256:")
    assert flags(webhook["args"])["--workers"] == "2"
    assert "--log-level=debug" in webhook["args"]
    assert rendered.get("PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_audit_deployment() -> None:
    rendered = render()
    audit = rendered.by_component("Deployment", "audit")
    assert audit["spec"]["replicas"] == 1
    spec = audit["spec"]["template"]["spec"]
    ctr = container(spec)
    assert ctr["command"] == ["podgate"]
    assert ctr["args"][:2] == ["audit", "--watch"]
    args = flags(ctr["args"])
    assert args["--config"] == "/etc/podgate/config.yaml"
    assert args["--metrics-port"] == "8080"
    assert "--policy-reports" not in args
    env = {e["name"]: e for e in ctr["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["PODGATE_AUDIT_LEASE"]["value"] == "podgate-audit"
    assert (
        spec["serviceAccountName"]
        != rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
    )
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert (
        "--policy-reports"
        in container(
            render([scenario("audit-mode")]).by_component("Deployment", "audit")["spec"][
                "template"
            ]["spec"]
        )["args"]
    )
    without = render(sets=["audit.enabled=false"])
    assert [d["metadata"]["name"] for d in without.of_kind("Deployment")] == [NAME]


def _hooks(rendered_objects: tuple[Obj, ...], hook: str) -> list[Obj]:
    return [
        o
        for o in rendered_objects
        if o["metadata"].get("annotations", {}).get("helm.sh/hook") == hook
    ]


def test_pre_delete_hook_removes_exactly_what_podgate_made() -> None:
    rendered = render(sets=["audit.policyReports=true"])
    hooks = _hooks(rendered.objects, "pre-delete")
    assert {o["kind"] for o in hooks} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Job",
    }  # fmt: skip
    for obj in hooks:
        policy = obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
        assert {"before-hook-creation", "hook-succeeded"} <= set(policy)
    weights = {o["kind"]: int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in hooks}
    assert max(weights[k] for k in weights if k != "Job") < weights["Job"]
    job = next(o for o in hooks if o["kind"] == "Job")
    ctr = container(job["spec"]["template"]["spec"])
    assert ctr["command"] == ["podgate"]
    assert ctr["args"][0] == "cleanup"
    args = flags(ctr["args"])
    validating = rendered.get("ValidatingWebhookConfiguration")["metadata"]["name"]
    mutating = rendered.get("MutatingWebhookConfiguration")["metadata"]["name"]
    assert (args["--validating-webhook"], args["--mutating-webhook"]) == (validating, mutating)
    deployments = [d["metadata"]["name"] for d in rendered.of_kind("Deployment")]
    stopped = [a for i, a in enumerate(ctr["args"]) if ctr["args"][i - 1] == "--stop-deployment"]
    assert sorted(stopped) == sorted(deployments)
    assert args["--cert-secret"] == f"{NAME}-tls"
    assert args["--lease"] == args["--policy-reports"] == "podgate-audit"
    # Every right is by name, but listing what the names cannot narrow.
    cluster_rules = next(o for o in hooks if o["kind"] == "ClusterRole")["rules"]
    role_rules = next(o for o in hooks if o["kind"] == "Role")["rules"]
    for rule in cluster_rules + role_rules:
        if rule["verbs"] != ["list"]:
            assert rule["resourceNames"], rule
    hooks_rule = cluster_rules[0]
    assert set(hooks_rule["resources"]) == {
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    }
    assert hooks_rule["resourceNames"] == [validating]
    assert set(hooks_rule["verbs"]) <= {"get", "delete"}
    scale = next(r for r in role_rules if r["resources"] == ["deployments/scale"])
    assert sorted(scale["resourceNames"]) == sorted(deployments)
    assert (
        job["spec"]["template"]["spec"]["serviceAccountName"]
        == next(o for o in hooks if o["kind"] == "ServiceAccount")["metadata"]["name"]
    )
    assert not _hooks(render(sets=["preDeleteHook.enabled=false"]).objects, "pre-delete")


def test_pre_delete_hook_never_deletes_a_secret_it_did_not_make() -> None:
    rendered = render([scenario("provided-certs")])
    job = next(o for o in _hooks(rendered.objects, "pre-delete") if o["kind"] == "Job")
    assert "--cert-secret" not in container(job["spec"]["template"]["spec"])["args"]
    role = next(o for o in _hooks(rendered.objects, "pre-delete") if o["kind"] == "Role")
    assert all("secrets" not in r["resources"] for r in role["rules"])


def test_helm_test_pod_calls_readyz_through_the_service() -> None:
    rendered = render()
    (pod,) = _hooks(rendered.objects, "test")
    assert pod["kind"] == "Pod"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    ctr = container(pod["spec"])
    assert ctr["command"][:2] == ["python", "-c"]  # the image has no shell or curl
    code = ctr["command"][2]
    compile(code, "<helm test>", "exec")
    service = rendered.get("Service", NAME)
    port = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")["port"]
    assert f"http://{NAME}.{rendered.namespace}.svc:{port}/readyz" in code
    assert not _hooks(render([scenario("out-of-cluster-url")]).objects, "test")


def test_plugins_are_projected_next_to_the_config() -> None:
    rendered = render([scenario("plugins-configmap")])
    plugins = rendered.get("ConfigMap", f"{NAME}-plugins")
    assert set(plugins["data"]) == {"team_label.py"}
    for component in ("webhook", "audit"):
        spec = rendered.by_component("Deployment", component)["spec"]["template"]["spec"]
        volume = next(v for v in spec["volumes"] if v["name"] == "config")
        sources = [s["configMap"] for s in volume["projected"]["sources"]]
        assert sources[1]["name"] == f"{NAME}-plugins"
        assert sources[1]["items"] == [{"key": "team_label.py", "path": "plugins/team_label.py"}]


def test_existing_plugins_configmap() -> None:
    rendered = render(sets=["plugins.existingConfigMap=my-policies", "plugins.keys={a.py,b.py}"])
    assert not rendered.has("ConfigMap", f"{NAME}-plugins")
    spec = rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    source = next(v for v in spec["volumes"] if v["name"] == "config")["projected"]["sources"][1]
    assert source["configMap"]["name"] == "my-policies"
    assert [i["path"] for i in source["configMap"]["items"]] == ["plugins/a.py", "plugins/b.py"]
    missing_keys = template(sets=["plugins.existingConfigMap=my-policies"])
    assert missing_keys.returncode != 0
    assert "plugins.keys" in missing_keys.stderr


def test_network_policy_opens_admission_port_and_restricts_metrics() -> None:
    rendered = render([scenario("everything-optional-enabled")])
    policy = rendered.by_component("NetworkPolicy", "webhook")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    labels = rendered.by_component("Deployment", "webhook")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    https, metrics = policy["spec"]["ingress"]
    assert https["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert "from" not in https
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    peers = metrics["from"]
    assert peers[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    test_labels = _hooks(rendered.objects, "test")[0]["metadata"]["labels"]
    assert peers[-1]["podSelector"]["matchLabels"].items() <= test_labels.items()
    audit = rendered.by_component("NetworkPolicy", "audit")
    assert audit["spec"]["ingress"][0]["from"] == peers[:-1]
    closed = rendered.by_component("NetworkPolicy", "no-ingress")["spec"]
    assert (closed["policyTypes"], closed["ingress"]) == (["Ingress"], [])
    (expression,) = closed["podSelector"]["matchExpressions"]
    job = next(o for o in _hooks(rendered.objects, "pre-delete") if o["kind"] == "Job")
    test_pod = next(o for o in _hooks(rendered.objects, "test") if o["kind"] == "Pod")
    for labels in (job["spec"]["template"]["metadata"]["labels"], test_pod["metadata"]["labels"]):
        assert closed["podSelector"]["matchLabels"].items() <= labels.items()
        assert labels[expression["key"]] in expression["values"]


def test_service_monitor_scrapes_webhook_and_audit() -> None:
    rendered = render([scenario("everything-optional-enabled")])
    monitor = rendered.get("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == (
        "metrics",
        "/metrics",
        "15s",
    )
    selector = monitor["spec"]["selector"]
    selected = [
        s
        for s in rendered.of_kind("Service")
        if selector["matchLabels"].items() <= s["metadata"]["labels"].items()
        and s["metadata"]["labels"]["app.kubernetes.io/component"]
        in selector["matchExpressions"][0]["values"]
    ]
    assert {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected} == {
        "webhook",
        "audit",
    }
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in selected)


def test_host_network_for_clusters_whose_api_server_cannot_reach_pods() -> None:
    default = render().by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    assert "hostNetwork" not in default
    assert "dnsPolicy" not in default
    host = render(sets=["webhook.hostNetwork=true"]).by_component("Deployment", "webhook")
    spec = host["spec"]["template"]["spec"]
    # on the node's network, Service names resolve only with this policy
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    chosen = render(sets=["webhook.hostNetwork=true", "webhook.dnsPolicy=Default"])
    assert chosen.by_component("Deployment", "webhook")["spec"]["template"]["spec"][
        "dnsPolicy"
    ] == ("Default")


def test_a_node_affinity_keeps_the_replicas_spread() -> None:
    """Affinity given for node placement must not silently drop the default
    anti-affinity; one given with its own podAntiAffinity replaces it."""
    nodes = "webhook.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    rendered = render(
        sets=[f"{nodes}.nodeSelectorTerms[0].matchExpressions[0].key=pool",
              f"{nodes}.nodeSelectorTerms[0].matchExpressions[0].operator=Exists"]
    )  # fmt: skip
    affinity = rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"][
        "affinity"
    ]
    assert "nodeAffinity" in affinity
    terms = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    own = render(
        sets=["webhook.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"
              "[0].topologyKey=topology.kubernetes.io/zone"]
    )  # fmt: skip
    anti = own.by_component("Deployment", "webhook")["spec"]["template"]["spec"]["affinity"][
        "podAntiAffinity"
    ]
    assert list(anti) == ["requiredDuringSchedulingIgnoredDuringExecution"]
