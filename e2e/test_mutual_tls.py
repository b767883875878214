"""Mutual TLS against the real API server: podgate serves with `--client-ca`
(the CA of the certificate e2e/cluster.sh gives the API server for webhooks,
through `--admission-control-config-file` and a WebhookAdmissionConfiguration
kubeConfigFile). `kubectl apply` is judged by podgate as before; a review
forged by anyone else (no certificate, or one of another CA, even the
cluster's own) is refused before HTTP."""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.conftest import (
    Podgate,
    apply,
    bad_pod,
    container,
    eventually,
    good_pod,
    kubectl,
    kubectl_ok,
    new_namespace,
)

pytestmark = pytest.mark.e2e

CLIENT_NAME = "kube-apiserver-webhook-client"  # the CN e2e/cluster.sh gives it


def _client_ca() -> Path:
    ca = Path(os.environ.get("PODGATE_E2E_WEBHOOK_CLIENT_CA", "/nonexistent"))
    if not ca.is_file():
        pytest.skip("the API server presents no webhook client certificate (e2e/cluster.sh does)")
    return ca


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Podgate, str]]:
    """podgate with --client-ca, called by a webhook configuration of its own
    for one namespace (which the chart's webhooks, if installed, leave alone)."""
    ca = _client_ca()
    server = Podgate(
        tmp_path_factory.mktemp("mtls"),
        extra_args=("--client-ca", str(ca), "--client-cn", CLIENT_NAME),
    )
    server.start()
    key = uuid.uuid4().hex[:8]
    namespace = new_namespace("mtls", labels={"podgate.dev/ignore": "true", "e2e-mtls": key})
    name = f"podgate-e2e-mtls-{key}"
    kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(_webhooks(server, name, key)))
    try:
        probe = bad_pod("probe", namespace)
        eventually(
            lambda: "denied the request" in apply(probe, "--dry-run=server").stderr, timeout=60
        )
        yield server, namespace
    finally:
        kubectl("delete", "validatingwebhookconfiguration", name, "--wait=false")
        kubectl("delete", "namespace", namespace, "--wait=false")
        server.stop()
        print(f"\n--- podgate (mTLS) log ---\n{server.tail(30)}")


def _webhooks(server: Podgate, name: str, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "validate.mtls.podgate.dev",
                "clientConfig": {"url": f"{server.url}/validate", "caBundle": server.ca_bundle()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"e2e-mtls": key}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }


def _forged(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "name": "forged",
            "operation": "CREATE",
            "userInfo": {"username": "someone-to-blame"},
            "object": bad_pod("forged", namespace),
            "dryRun": False,
        },
    }


def _post(server: Podgate, context: ssl.SSLContext, namespace: str) -> httpx.Response:
    with httpx.Client(verify=context, timeout=5) as client:
        return client.post(f"{server.url}/validate", json=_forged(namespace))


def test_kubectl_apply_is_judged_through_the_api_server_s_certificate(
    mtls: tuple[Podgate, str],
) -> None:
    server, namespace = mtls
    refused = apply(bad_pod("bad", namespace), "--dry-run=server")
    assert refused.returncode != 0
    assert "require-resources" in refused.stderr, refused.stderr
    # only the validating webhook is registered here: no defaults are filled in
    compliant = good_pod("good", namespace)
    compliant["spec"]["containers"] = [container(
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
        securityContext={"runAsUser": 10001, "runAsNonRoot": True},
    )]  # fmt: skip
    admitted = apply(compliant, "--dry-run=server")
    assert admitted.returncode == 0, admitted.stderr
    assert server.metric("podgate_connections_closed_total", reason="client-name") == 0


def test_a_forged_review_without_a_certificate_is_refused(mtls: tuple[Podgate, str]) -> None:
    server, namespace = mtls
    context = ssl.create_default_context(cafile=str(server.cert_dir / "ca.crt"))
    with pytest.raises(httpx.TransportError):
        _post(server, context, namespace)


def test_a_certificate_of_the_cluster_s_own_ca_is_refused(mtls: tuple[Podgate, str]) -> None:
    # the admin's client certificate: trusted by the API server, not by podgate
    server, namespace = mtls
    certs = Path(os.environ["KUBECONFIG"]).parent / "certs"
    context = ssl.create_default_context(cafile=str(server.cert_dir / "ca.crt"))
    context.load_cert_chain(certs / "admin.crt", certs / "admin.key")
    with pytest.raises(httpx.TransportError):
        _post(server, context, namespace)
    assert "someone-to-blame" not in server.log_path.read_text()
