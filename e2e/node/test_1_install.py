"""`helm install --wait` with the chart's defaults: what runs, as whom, with which rights."""

from __future__ import annotations

import base64
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.conftest import kubectl, kubectl_json, kubectl_ok
from e2e.node.release import NAMESPACE, RELEASE, NodeRelease, lease_holder, names

NODE = "podgate-e2e-node"


def test_every_pod_of_the_default_install_is_ready_on_the_node(release: NodeRelease) -> None:
    webhook, audit = release.ready_pods("webhook"), release.ready_pods("audit")
    assert (len(webhook), len(audit)) == (2, 1), release.describe()
    for pod in webhook + audit:
        assert pod["spec"]["nodeName"] == NODE
        (container,) = pod["spec"]["containers"]
        assert container["image"] == release.images.pinned
        (status,) = pod["status"]["containerStatuses"]
        assert status["restartCount"] == 0, f"{pod['metadata']['name']} restarted"


def test_the_image_serves_on_httptools_and_uvloop(release: NodeRelease) -> None:
    """The image ships the fast stack: a pod that fell back to h11 would
    still answer, only slower, so only its log line tells."""
    for pod in names(release.ready_pods("webhook")):
        lines = kubectl("logs", "-n", NAMESPACE, pod, "--tail=-1").stdout.splitlines()
        stacks = [
            json.loads(line) for line in lines
            if line.startswith("{") and '"serving HTTP with' in line
        ]  # fmt: skip
        assert stacks, f"{pod} did not log its HTTP stack:\n" + "\n".join(lines[-20:])
        for stack in stacks:
            assert (stack["http"], stack["loop"]) == ("httptools", "uvloop"), (pod, stack)
            assert "not_installed" not in stack, (pod, stack)


def test_the_restricted_profile_admits_and_runs_them_as_65532_read_only(
    release: NodeRelease,
) -> None:
    labels = kubectl_json("get", "namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    probe = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n"
        "    open('/podgate-probe', 'w')\n"
        "except OSError as e:\n"
        "    print(e.strerror)\n"
        "open('/tmp/podgate-probe', 'w').write('ok')\n"
    )
    for pod in names(release.pods("webhook") + release.pods("audit")):
        uid_gid, error = release.in_pod(pod, probe).splitlines()
        assert uid_gid == "65532 65532", pod
        assert error == "Read-only file system", pod


def _samples(text: str, name: str) -> dict[str, float]:
    return {
        json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_caches_sync_with_the_installed_rbac(release: NodeRelease) -> None:
    for pod in names(release.pods("webhook")):
        synced = _samples(release.metrics(pod), "podgate_cluster_cache_synced")
        assert synced, f"{pod} exports no cache state"
        assert set(synced.values()) == {1.0}, (pod, synced)


def test_the_self_managed_certificate_is_written_and_registered(release: NodeRelease) -> None:
    secret = kubectl_json("get", "secret", f"{RELEASE}-tls", "-n", NAMESPACE)
    ca = secret["data"]["ca.crt"]
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        config = kubectl_json("get", kind, RELEASE)
        assert {w["clientConfig"]["caBundle"] for w in config["webhooks"]} == {ca}, kind
        services = {w["clientConfig"]["service"]["name"] for w in config["webhooks"]}
        assert services == {RELEASE}, kind


def test_the_audit_holds_its_lease(release: NodeRelease) -> None:
    (audit,) = names(release.ready_pods("audit"))
    assert lease_holder() == audit


def _can(service_account: str, *args: str) -> bool:
    proc = kubectl(
        "auth", "can-i", *args, f"--as=system:serviceaccount:{NAMESPACE}:{service_account}"
    )
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


# (verb and resource, namespace or None for cluster-wide, allowed?)
WEBHOOK_RIGHTS = [
    (("get", f"secret/{RELEASE}-tls"), NAMESPACE, True),
    (("update", f"secret/{RELEASE}-tls"), NAMESPACE, True),
    (("patch", f"validatingwebhookconfiguration/{RELEASE}"), None, True),
    (("watch", "networkpolicies"), None, True),
    (("create", "events"), "default", True),
    (("get", "secret/other"), NAMESPACE, False),
    (("list", "secrets"), NAMESPACE, False),
    (("get", "secrets"), "kube-system", False),
    (("list", "secrets"), None, False),
    (("patch", "validatingwebhookconfiguration/someone-else"), None, False),
    (("delete", f"validatingwebhookconfiguration/{RELEASE}"), None, False),
    (("create", "pods"), "default", False),
    (("update", "deployments"), "default", False),
    (("create", "clusterrolebindings"), None, False),
    (("list", "pods"), None, False),
]
AUDIT_RIGHTS = [
    (("list", "deployments"), None, True),
    (("watch", "pods"), None, True),
    (("update", "lease/podgate-audit"), NAMESPACE, True),
    (("create", "events"), "default", True),
    (("get", "secrets"), NAMESPACE, False),
    (("list", "secrets"), None, False),
    (("update", "lease/other"), NAMESPACE, False),
    (("update", "lease/podgate-audit"), "kube-system", False),
    (("delete", "pods"), "default", False),
    (("patch", "deployments"), "default", False),
    (("create", "policyreports.wgpolicyk8s.io"), "default", False),  # only when enabled
    (("patch", f"validatingwebhookconfiguration/{RELEASE}"), None, False),
]


@pytest.mark.parametrize(
    ("account", "rights"),
    [(RELEASE, WEBHOOK_RIGHTS), (f"{RELEASE}-audit", AUDIT_RIGHTS)],
    ids=["webhook", "audit"],
)
def test_service_accounts_may_do_their_job_and_no_more(
    release: NodeRelease, account: str, rights: list[tuple[tuple[str, str], str | None, bool]]
) -> None:
    wrong = []
    for (verb, resource), namespace, allowed in rights:
        where = ["-n", namespace] if namespace else ["--all-namespaces"]
        if _can(account, verb, resource, *where) != allowed:
            wrong.append(
                f"{verb} {resource} in {namespace or 'all namespaces'}: expected {allowed}"
            )
    assert wrong == [], wrong
    kubectl_ok("get", "serviceaccount", account, "-n", NAMESPACE)
