"""Bad input and faults: each gets a 4xx with the reason, or a decision by the
failure action, never a hung or dropped request."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import reviews as rv
from tests.integration.harness import Server, metric, sink, start_server, tls_context
from tests.webhook.fakes import wait_for


def _status(resp: httpx.Response, code: int) -> str:
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert body["kind"] == "Status"
    assert body["code"] == code
    message: str = body["message"]
    return message


def test_malformed_json_is_400_with_the_reason(server: Server) -> None:
    resp = server.client.post(
        "/validate", content=b'{"apiVersion": "admission.k8s.io/v1", "kind": ',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert "malformed JSON" in _status(resp, 400)


def test_wrong_content_type_is_415(server: Server) -> None:
    body = json.dumps(rv.review(rv.deployment())).encode()
    resp = server.client.post("/validate", content=body, headers={"content-type": "text/plain"})
    assert "application/json" in _status(resp, 415)
    # a charset parameter is fine
    ok = server.client.post(
        "/validate", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_body_over_8_mib_is_413(server: Server) -> None:
    review = rv.review(rv.deployment())
    review["request"]["object"]["metadata"]["annotations"]["padding"] = "x" * (8 * 1024 * 1024)
    before = server.metrics()
    resp = server.post("/validate", review)
    assert "limit" in _status(resp, 413)
    assert metric(server.metrics(), "podgate_admission_invalid_requests_total", code="413") == (
        metric(before, "podgate_admission_invalid_requests_total", code="413") + 1
    )
    # the connection is still usable afterwards
    assert server.post("/validate", rv.review(rv.deployment())).status_code == 200


def test_review_without_request_or_uid_is_400(server: Server) -> None:
    no_request = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    assert "request" in _status(server.post("/validate", no_request), 400)
    body = rv.review(rv.deployment())
    del body["request"]["uid"]
    assert "request.uid" in _status(server.post("/validate", body), 400)
    body["request"]["uid"] = ""
    assert "request.uid" in _status(server.post("/mutate", body), 400)
    wrong = {**rv.review(rv.deployment()), "apiVersion": "admission.k8s.io/v2"}
    assert "apiVersion" in _status(server.post("/validate", wrong), 400)
    assert "JSON object" in _status(server.post("/validate", [1, 2]), 400)


def test_object_that_is_not_a_mapping_is_400(server: Server) -> None:
    body = rv.review(rv.deployment())
    body["request"]["object"] = ["not", "a", "mapping"]
    assert "request.object must be a JSON object" in _status(server.post("/validate", body), 400)
    body["request"]["object"] = None
    assert "got null" in _status(server.post("/validate", body), 400)


def test_policy_that_raises_is_decided_by_its_failure_action(server: Server) -> None:
    before = server.metrics()
    loud = rv.deployment("web", "shop", annotations={"test.podgate.dev/explode": "1"})
    body = rv.review(loud, uid="raise-1")
    resp = server.review("/validate", body)  # carries the uid
    assert resp["allowed"] is True  # the harness sets explode's failure_action: warn
    assert resp["warnings"] == [
        "explode: podgate could not evaluate it: the policy raised RuntimeError: kaboom "
        "(failure_action: warn)"
    ]
    strict = rv.deployment("web", "shop", annotations={"test.podgate.dev/explode-strict": "1"})
    resp = server.review("/validate", rv.review(strict, uid="raise-2"))
    assert resp["uid"] == "raise-2"
    assert resp["allowed"] is False
    assert resp["status"]["message"] == (
        "podgate could not check Deployment shop/web against 1 policy, so it is refused:\n"
        "- explode-strict: podgate could not evaluate it: the policy raised RuntimeError: "
        "kaboom, strictly (failure_action: deny)"
    )
    after = server.metrics()
    for policy in ("explode", "explode-strict"):
        assert metric(after, "podgate_policy_errors_total", policy=policy) == (
            metric(before, "podgate_policy_errors_total", policy=policy) + 1
        )
    assert metric(after, "podgate_policy_results_total", policy="explode", result="error") > 0


def test_the_deadline_refuses_by_the_failure_actions_not_unchecked(tmp_path: Path) -> None:
    srv = start_server(tmp_path, sink=sink(), deadline_s=0.5)
    try:
        slow = rv.deployment("web", "shop", annotations={"test.podgate.dev/sleep": "1.5"})
        started = time.monotonic()
        resp = srv.review("/validate", rv.review(slow, uid="slow-1"))
        took = time.monotonic() - started
        assert took < 1.2, took  # answered at the deadline, not when the policy finished
        assert resp["allowed"] is False
        message = resp["status"]["message"]
        assert message.startswith("podgate could not check Deployment shop/web against ")
        assert (
            "- slow: podgate could not evaluate it: the evaluation did not finish within the "
            "0.5s deadline; slow was running (failure_action: deny)"
        ) in message.splitlines()
        # a warn policy that could not be evaluated warns; an audit one stays silent
        assert any(w.startswith("require-image-digest: podgate could not evaluate it: ")
                   for w in resp["warnings"])  # fmt: skip
        assert "require-probes" not in message + " ".join(resp["warnings"])
        text = srv.metrics()
        assert metric(text, "podgate_admission_errors_total", reason="deadline") >= 1
        assert metric(text, "podgate_admission_requests_total", decision="error") >= 1
        # the event loop was never blocked: other requests are answered meanwhile
        fast = srv.review("/validate", rv.review(rv.deployment()))
        assert fast["allowed"] is True
    finally:
        srv.stop()


def test_a_body_arriving_after_the_deadline_is_answered_saying_so(tmp_path: Path) -> None:
    srv = start_server(tmp_path, sink=sink(), deadline_s=0.5)
    try:
        body = json.dumps(rv.review(rv.deployment(), uid="late")).encode()
        head = (
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        conn = _raw_tls(srv)
        try:
            conn.sendall(head + body[:100])
            time.sleep(0.7)  # within the 1 s read timeout, past the 0.5 s deadline
            conn.sendall(body[100:])
            answer = _read_response(conn)
        finally:
            conn.close()
        response = answer["response"]
        assert response["allowed"] is False
        lines = response["status"]["message"].splitlines()
        assert any(
            line.startswith(
                "- require-resources: podgate could not evaluate it: the request took 0."
            )
            and line.endswith("s to arrive, past the 0.5s deadline (failure_action: deny)")
            for line in lines
        ), lines
    finally:
        srv.stop()


def _read_response(conn: ssl.SSLSocket) -> dict[str, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(
        line.split(b":")[1] for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    ))  # fmt: skip
    while len(rest) < length:
        rest += conn.recv(65536)
    answer: dict[str, Any] = json.loads(rest)
    return answer


def _raw_tls(server: Server) -> ssl.SSLSocket:
    ctx = tls_context(server.ca_file)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.parametrize("partial", ["headers", "body"])
def test_a_stalled_half_request_is_cut_off(server: Server, partial: str) -> None:
    body = json.dumps(rv.review(rv.deployment())).encode()
    head = (
        f"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()
    conn = _raw_tls(server)
    try:
        conn.sendall(head if partial == "headers" else head + b"\r\n" + body[:40])
        started = time.monotonic()
        # meanwhile the server keeps answering others
        assert server.review("/validate", rv.review(rv.deployment()))["allowed"] is True
        conn.settimeout(5)
        try:
            data = conn.recv(1024)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        waited = time.monotonic() - started
        assert data == b""  # closed without an answer
        assert waited < 3.0, waited  # read timeout is 1 s in the harness
    finally:
        conn.close()


def test_in_flight_and_duration_metrics_names(server: Server) -> None:
    server.review("/validate", rv.review(rv.deployment()))
    text = server.metrics()
    for name in (
        "podgate_admission_requests_total",
        "podgate_admission_duration_seconds_bucket",
        "podgate_admission_requests_in_flight",
        "podgate_policy_results_total",
        "podgate_policy_duration_seconds_bucket",
        "podgate_certificate_expiry_timestamp_seconds",
        "podgate_cluster_cache_synced",
        "podgate_cluster_cache_age_seconds",
        "podgate_events_sent_total",
        "podgate_events_dropped_total",
        "podgate_config_reloads_total",
    ):
        assert f"\n{name}" in text or f"# TYPE {name}" in text, name
    buckets = {"0.0005", "10.0", "+Inf"}
    for le in buckets:
        assert f'podgate_admission_duration_seconds_bucket{{le="{le}",webhook="validate"}}' in text
    assert metric(text, "podgate_cluster_cache_synced", resource="networkpolicies") == 1
    assert metric(text, "podgate_certificate_expiry_timestamp_seconds") > time.time()
    # bounded labels: no names or uids anywhere
    for line in text.splitlines():
        if line.startswith("podgate_"):
            assert "uid" not in line, line
            assert 'name="' not in line, line


def test_refused_requests_are_logged_at_most_once_a_second(server: Server) -> None:
    """(RefusalLog's counting is unit-tested in tests/webhook/test_plumbing.py.)"""
    body = json.dumps(rv.review(rv.deployment())).encode()
    before = len(server.log_lines())
    for _ in range(3):
        server.client.post("/validate", content=body, headers={"content-type": "text/plain"})

    def refusals() -> list[dict[str, Any]]:
        return [line for line in server.log_lines()[before:] if line["msg"] == "refused a request"]

    wait_for(refusals)
    first = refusals()[0]
    assert (first["level"], first["webhook"], first["status"]) == ("warning", "validate", 415)
    assert first["reason"] == "content type must be application/json, got 'text/plain'"
    assert len(refusals()) <= 2, "three refusals within a second: one line (two at a boundary)"


def test_a_trailing_slash_reaches_the_webhook_not_a_redirect(server: Server) -> None:
    for path in ("/validate/", "/mutate/"):
        resp = server.post(path, rv.review(rv.deployment(), uid=f"slash{path}"))
        assert resp.status_code == 200, resp.text
        assert resp.json()["response"]["uid"] == f"slash{path}"
