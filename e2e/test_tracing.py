"""Tracing across the real API server: kube-apiserver traces every request
(e2e/cluster.sh starts it with `--tracing-config-file`, sending OTLP/gRPC to
127.0.0.1:$PODGATE_E2E_OTLP_PORT), and podgate, started with
`--otlp-endpoint`, continues that trace from the `traceparent` header of the
webhook call. A `kubectl apply` of a Deployment then shows up as one trace: the
API server's request, its admission webhook call, and podgate's span inside it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.conftest import (
    Podgate,
    apply,
    bad_pod,
    container,
    deployment,
    eventually,
    kubectl,
    kubectl_ok,
    new_namespace,
)
from tests.otlp import GrpcReceiver, HttpReceiver, Span

pytestmark = pytest.mark.e2e


def _apiserver_port() -> int:
    port = os.environ.get("PODGATE_E2E_OTLP_PORT")
    if not port:
        pytest.skip("the API server sends no spans here (e2e/cluster.sh's env sets the port)")
    return int(port)


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Podgate, str, GrpcReceiver, HttpReceiver]]:
    """Both receivers, podgate exporting to one of them, and a namespace that
    only podgate's own webhook configuration here judges."""
    with GrpcReceiver(_apiserver_port()) as apiserver, HttpReceiver() as ours:
        server = Podgate(
            tmp_path_factory.mktemp("tracing"),
            extra_args=("--otlp-endpoint", ours.endpoint, "--trace-sample-ratio", "1"),
        )
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # spans out within the test's wait
            server.start()
        key = uuid.uuid4().hex[:8]
        namespace = new_namespace(
            "tracing", labels={"podgate.dev/ignore": "true", "e2e-tracing": key}
        )
        name = f"podgate-e2e-tracing-{key}"
        kubectl_ok("apply", "-f", "-", stdin=yaml.safe_dump(_webhooks(server, name, key)))
        try:
            eventually(
                lambda: (
                    "denied the request"
                    in apply(bad_pod("probe", namespace), "--dry-run=server").stderr
                ),
                timeout=60,
            )
            yield server, namespace, apiserver, ours
        finally:
            kubectl("delete", "validatingwebhookconfiguration", name, "--wait=false")
            kubectl("delete", "namespace", namespace, "--wait=false")
            server.stop()
            print(f"\n--- podgate (tracing) log ---\n{server.tail(20)}")


def _webhooks(server: Podgate, name: str, key: str) -> dict[str, Any]:
    rule = {"operations": ["CREATE", "UPDATE"], "apiVersions": ["v1"]}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "validate.tracing.podgate.dev",
                "clientConfig": {"url": f"{server.url}/validate", "caBundle": server.ca_bundle()},
                "rules": [
                    {**rule, "apiGroups": [""], "resources": ["pods"]},
                    {**rule, "apiGroups": ["apps"], "resources": ["deployments"]},
                ],
                "namespaceSelector": {"matchLabels": {"e2e-tracing": key}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }


def _ancestors(span: Span, spans: list[Span]) -> list[Span]:
    """The chain of `span`'s parents among `spans`, nearest first."""
    by_id = {s.span_id: s for s in spans}
    chain: list[Span] = []
    current = by_id.get(span.parent_span_id)
    while current is not None and len(chain) < 50:
        chain.append(current)
        current = by_id.get(current.parent_span_id)
    return chain


def test_podgate_s_span_is_a_child_of_the_api_server_s_webhook_call(
    traced: tuple[Podgate, str, GrpcReceiver, HttpReceiver],
) -> None:
    server, namespace, apiserver, ours = traced
    # The API server's batch exporter drops spans while its queue is full, and
    # it fills while nothing listens (the rest of the suite runs with every
    # request sampled): a create whose API-server spans were dropped says
    # nothing of podgate, so another is made, up to four.
    seen: set[str] = set()
    for attempt in range(1, 5):
        span = _podgate_span_of_a_create(namespace, ours, seen)
        try:
            parent = _parent_of(span, apiserver)
            break
        except AssertionError:
            if attempt == 4:
                raise
    assert parent.service == "apiserver"
    assert parent.trace_id == span.trace_id
    # the parent is the API server's call of this webhook (or the HTTP client
    # span inside it), within the request that created the Deployment
    spans = apiserver.collected.snapshot()
    chain = [parent, *_ancestors(parent, spans)]
    names = [s.name for s in chain]
    assert any("validating webhook" in n.lower() for n in names), names
    assert chain[-1].parent_span_id == "", names  # the chain reaches the request's root span
    print(f"\ntrace {span.trace_id}: podgate validate <- {' <- '.join(names)}")
    # podgate's log line for that admission carries the same trace id
    uid = span.attributes["podgate.uid"]
    eventually(lambda: f'"trace_id":"{span.trace_id}"' in _line_of(server, uid), timeout=10)


def _parent_of(span: Span, apiserver: GrpcReceiver) -> Span:
    return apiserver.collected.wait_for(lambda s: s.span_id == span.parent_span_id, timeout=20)


def _podgate_span_of_a_create(namespace: str, ours: HttpReceiver, seen: set[str]) -> Span:
    """Create a Deployment; podgate's span of its admission (one not in
    `seen`, then added to it), checked."""
    name = f"traced-{uuid.uuid4().hex[:6]}"
    web = container(
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
        securityContext={"runAsNonRoot": True, "runAsUser": 10001},
    )  # only the validating webhook is registered here: nothing fills in defaults
    applied = apply(deployment(name, namespace, {"containers": [web]}))
    assert applied.returncode == 0, applied.stderr

    def ours_for_it(s: Span) -> bool:
        return (
            s.name == "podgate validate"
            and s.attributes.get("podgate.namespace") == namespace
            and s.attributes.get("podgate.kind") == "Deployment"
            and s.span_id not in seen
            and s.attributes.get("podgate.dry_run") is False
        )

    span = ours.collected.wait_for(ours_for_it, timeout=30)
    assert span.service == "podgate"
    assert span.parent_span_id, "podgate started a trace of its own: no traceparent came"
    assert span.attributes["podgate.decision"] in ("allowed", "warned")
    seen.add(span.span_id)
    return span


def _line_of(server: Podgate, uid: object) -> str:
    lines = server.log_path.read_text(errors="replace").splitlines()
    return next((line.replace(" ", "") for line in lines if f'"{uid}"' in line), "")
