"""The pip-installed plugin package, in the two other entry points: the webhook
over TLS, and the audit. Nothing in podgate or its config names the package;
its `podgate.policies` entry point is all it takes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.harness import free_port, tls_context
from tests.integration.reviews import review
from tests.plugins.test_plugin_package import PRIVILEGED
from tests.plugins.venv import PluginVenv
from webhook.server import tls

pytestmark = pytest.mark.slow  # builds the plugin venv once per session


def test_the_webhook_over_tls_enforces_the_package(plugin_venv: PluginVenv, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    cert_dir = tmp_path / "certs"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(plugin_venv.podgate), "serve", "--self-signed", "--cert-dir", str(cert_dir),
         "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
         "--no-cluster"],
        env=plugin_venv.env(), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{metrics_port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        daemonset = yaml.safe_load(PRIVILEGED)
        with httpx.Client(
            base_url=f"https://localhost:{port}", verify=tls_context(cert_dir / tls.CA_FILE)
        ) as client:
            answer = client.post("/validate", json=review(daemonset)).json()["response"]
            listed = client.get("/policies").json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert 'disallow-privileged: container "agent" is privileged' in message, message
    assert "disallow-host-namespaces:" in message
    ids = {row["id"] for row in listed["policies"]}
    assert {"disallow-privileged", "disallow-host-namespaces", "require-probes"} <= ids


AUDIT_WITH_A_FAKE_CLUSTER = """
import json, sys, yaml
from policies.config import load_config
from webhook.cli.audit import report_of
from webhook.cli.report import to_json

daemonset = yaml.safe_load(sys.stdin.read())

class OneObjectCluster:
    def pages(self, kind, namespace, page_size):
        if kind.kind == "DaemonSet":
            yield [daemonset]
        else:
            yield []

config = load_config()
print(to_json(report_of(OneObjectCluster(), config, namespace=None, page_size=10), config))
"""


def test_the_audit_enforces_the_package(plugin_venv: PluginVenv, tmp_path: Path) -> None:
    # The audit's only seam to a cluster is its ClusterReader; the cluster is a
    # fake here (the e2e suite runs the audit against a real API server), the
    # config and the policy loading are the installed podgate's own.
    proc = subprocess.run(
        [str(plugin_venv.python), "-c", AUDIT_WITH_A_FAKE_CLUSTER],
        input=PRIVILEGED, env=plugin_venv.env(), capture_output=True, text=True, cwd=tmp_path,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    failing = {r["policy"] for r in results if r["result"] == "fail"}
    assert {"disallow-privileged", "disallow-host-namespaces"} <= failing
