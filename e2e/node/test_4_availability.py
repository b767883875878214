"""No request lost while the webhook's pods come and go.

The chart's defaults: two replicas, `failurePolicy: Fail`, a PodDisruptionBudget.
A stream of at least 5 writes a second (e2e/node/traffic.py) runs through each
disruption; every answer must be podgate's verdict. The counts are printed at
the end of the run ("figures measured on the node").
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from e2e.conftest import (
    allow_all_network_policy,
    apply,
    deployment,
    eventually,
    kubectl,
    kubectl_json,
)
from e2e.node.release import (
    NAMESPACE,
    RELEASE,
    NodeRelease,
    create_namespace,
    delete_namespace,
    names,
)
from e2e.node.traffic import GOOD_POD, Stream

MIN_RATE = 5.0
# A serving certificate of about three minutes: with its five minutes of
# backdating, a third of its life is left after some 20 s, so it is renewed
# every 20 s or so; every pod re-reads the Secret every 2 s.
SHORT_CERT = {"certificates": {"selfManaged": {"servingCertDays": 0.0021, "syncSeconds": 2}}}


@pytest.fixture(scope="module")
def target(release: NodeRelease) -> Iterator[tuple[str, str]]:
    """A namespace and a Deployment (no replicas) that the stream writes to."""
    namespace = f"e2e-stream-{uuid.uuid4().hex[:6]}"
    create_namespace(namespace)
    apply(allow_all_network_policy(namespace))
    target = deployment("target", namespace, GOOD_POD["spec"], replicas=0)
    proc = apply(target)
    assert proc.returncode == 0, proc.stderr
    yield namespace, "target"
    delete_namespace(namespace)


def _record(
    figures: list[dict[str, Any]], scenario: str, stream: Stream, **extra: Any
) -> dict[str, Any]:
    summary = {"scenario": scenario, **stream.tally.summary(), **extra}
    figures.append(summary)
    return summary


def _assert_nothing_lost(summary: dict[str, Any]) -> None:
    assert summary["lost"] == 0, summary
    assert summary["per_second"] >= MIN_RATE, summary
    counted = summary["admitted_or_refused_by_podgate"]
    assert set(counted) == {"good-pod", "bad-pod", "deployment-update"}, summary


def _gone(pod: str) -> bool:
    return kubectl("get", "pod", pod, "-n", NAMESPACE).returncode != 0


def test_deleting_a_webhook_pod_loses_no_request(
    release: NodeRelease, target: tuple[str, str], figures: list[dict[str, Any]]
) -> None:
    victim = names(release.ready_pods("webhook"))[0]
    with Stream(*target) as stream:
        time.sleep(4)
        kubectl("delete", "pod", victim, "-n", NAMESPACE, "--wait=false")
        eventually(lambda: _gone(victim), timeout=90)
        eventually(lambda: len(release.ready_pods("webhook")) == 2, timeout=90)
        time.sleep(4)
    _assert_nothing_lost(_record(figures, "a webhook pod deleted", stream, pod=victim))


def test_a_rolling_helm_upgrade_loses_no_request(
    release: NodeRelease, target: tuple[str, str], figures: list[dict[str, Any]]
) -> None:
    before = names(release.pods("webhook"))
    # A config change (reloaded in place) and new pod arguments (rolled out).
    change = {"config": {"policies": {"require-network-policy": {"action": "audit"}}}, **SHORT_CERT}
    with Stream(*target) as stream:
        time.sleep(4)
        release.upgrade(change)
        eventually(lambda: all(_gone(p) for p in before), timeout=90)
        time.sleep(4)
    after = names(release.ready_pods("webhook"))
    assert len(after) == 2
    assert not set(before) & set(after), "the upgrade did not roll the pods"
    _assert_nothing_lost(_record(figures, "helm upgrade rolling both webhook pods", stream))


def _serving_cert(pod: dict[str, Any]) -> bytes:
    """The certificate a webhook pod presents right now (DER)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((pod["status"]["podIP"], 8443), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return der


def _secret_cert() -> bytes:
    secret = kubectl_json("get", "secret", f"{RELEASE}-tls", "-n", NAMESPACE)
    pem = base64.b64decode(secret["data"]["tls.crt"])
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_certificate_rotations_lose_no_request(
    release: NodeRelease, target: tuple[str, str], figures: list[dict[str, Any]]
) -> None:
    if release.values.get("certificates") != SHORT_CERT["certificates"]:
        release.upgrade(SHORT_CERT)
    seen = [_secret_cert()]

    def rotated_twice() -> bool:
        current = _secret_cert()
        if current != seen[-1]:
            seen.append(current)
        return len(seen) >= 3

    with Stream(*target) as stream:
        eventually(rotated_twice, timeout=120, step=1)
        # every replica serves the newest certificate, not only the one that renewed it
        eventually(
            lambda: all(_serving_cert(p) == seen[-1] for p in release.ready_pods("webhook")),
            timeout=30,
        )
        time.sleep(2)
    summary = _record(figures, "serving certificate rotated twice", stream, rotations=len(seen) - 1)
    _assert_nothing_lost(summary)
