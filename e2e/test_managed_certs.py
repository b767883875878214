"""`podgate serve --manage-certs` against the real API server: the chart's default
certificate mode, where podgate keeps its CA in a Secret and patches the
caBundle of both webhook configurations itself."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.conftest import (
    CHART,
    ROOT,
    Podgate,
    apply,
    eventually,
    free_port,
    good_pod,
    helm,
    kubectl,
    kubectl_ok,
    ready_on,
)
from webhook.server import tls

LABEL = "podgate-e2e/managed"


@pytest.fixture
def release(installed: Podgate, tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    """A second release in URL mode whose webhooks only see Pods carrying LABEL,
    registered with a CA that signed nothing podgate serves."""
    name = f"managed-{uuid.uuid4().hex[:5]}"
    namespace = f"e2e-{name}"
    port = free_port()
    wrong_ca, _ = tls.make_ca("not-podgate")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "webhook": {
            "deploy": False,
            "url": f"https://127.0.0.1:{port}",
            "caBundle": base64.b64encode(wrong_ca).decode(),
            "objectSelector": {"matchLabels": {LABEL: "true"}},
        },
        "audit": {"enabled": False},
        "preDeleteHook": {"enabled": False},
    }))  # fmt: skip
    kubectl_ok("create", "namespace", namespace)
    kubectl_ok("label", "namespace", namespace, "podgate.dev/ignore=true")
    proc = helm("install", name, str(CHART), "-n", namespace, "-f", str(values))
    assert proc.returncode == 0, proc.stderr
    yield name, namespace, port
    helm("uninstall", name, "-n", namespace, "--wait")
    kubectl("delete", "namespace", namespace, "--wait=false")


def ca_bundle(kind: str, name: str) -> bytes:
    config = json.loads(kubectl_ok("get", kind, name, "-o", "json"))
    return base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])


def test_managed_certificates_are_created_and_the_ca_bundle_patched(
    release: tuple[str, str, int], namespace: str, tmp_path: Path
) -> None:
    name, release_namespace, port = release
    fullname = f"{name}-podgate"
    secret = f"{fullname}-tls"
    log = (tmp_path / "managed.log").open("wb")
    metrics_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhook.cli", "serve", "--manage-certs",
         "--cert-secret", secret, "--namespace", release_namespace, "--service", fullname,
         "--validating-webhook", fullname, "--mutating-webhook", fullname,
         "--cert-dir", str(tmp_path / "certs"), "--host", "127.0.0.1", "--port", str(port),
         "--metrics-port", str(metrics_port), "--kubeconfig", os.environ["KUBECONFIG"],
         "--shutdown-delay", "0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        stored = eventually(
            lambda: (
                (
                    s := kubectl("get", "secret", secret, "-n", release_namespace, "-o", "json")
                ).returncode
                == 0
                and json.loads(s.stdout)
            ),
            timeout=60,
        )
        ca = base64.b64decode(stored["data"]["ca.crt"])
        eventually(lambda: ca in ca_bundle("validatingwebhookconfiguration", fullname))
        eventually(lambda: ca in ca_bundle("mutatingwebhookconfiguration", fullname))
        # The bundles are patched before the server listens; the webhooks call
        # this URL directly, with no Service to hold calls back until it is ready.
        eventually(lambda: ready_on(metrics_port), timeout=60)
        # Through the patched bundle the API server trusts podgate: a labelled Pod
        # goes through both of this release's webhooks (failurePolicy Fail on one).
        pod = good_pod("managed", namespace)
        pod["metadata"]["labels"][LABEL] = "true"
        created = apply(pod)
        assert created.returncode == 0, created.stderr + (tmp_path / "managed.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
