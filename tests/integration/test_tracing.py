"""`podgate serve` over TLS sends its spans over OTLP/HTTP to a real receiver,
continuing the caller's trace; without an endpoint it sends nothing."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Process, start_process
from tests.integration.reviews import pod, review
from tests.otlp import HttpReceiver

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as r:
        yield r


@pytest.fixture(autouse=True)
def quick_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # the batch processor's delay, so a span arrives in a test's time
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)


def stop_gracefully(process: Process) -> None:
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(20) == 0, process.log()


def admission_lines(process: Process) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == "admission"]


@pytest.mark.slow
def test_spans_reach_the_collector_as_children_of_the_traceparent(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    process = start_process(
        tmp_path, "--otlp-endpoint", receiver.endpoint, "--trace-sample-ratio", "1"
    )
    try:
        request = review(pod("web", "shop"))
        with process.client() as client:
            answer = client.post("/validate", json=request, headers={"traceparent": TRACEPARENT})
            assert answer.status_code == 200, answer.text
            untraced = client.post("/mutate", json=review(pod("api", "shop")))
            assert untraced.status_code == 200, untraced.text
        span = receiver.collected.wait_for(lambda s: s.name == "podgate validate")
        assert span.service == "podgate"
        assert (span.trace_id, span.parent_span_id) == (TRACE_ID, PARENT_ID)
        assert span.kind == 2  # SPAN_KIND_SERVER
        assert span.attributes["podgate.uid"] == request["request"]["uid"]
        assert span.attributes["podgate.namespace"] == "shop"
        assert span.attributes["podgate.decision"] in ("allowed", "warned")
        assert "require-resources" in span.attributes["podgate.policies"]
        policies = {attrs["podgate.policy"] for name, attrs in span.events if name == "policy"}
        assert "require-resources" in policies
        root = receiver.collected.wait_for(lambda s: s.name == "podgate mutate")
        assert root.parent_span_id == ""
        assert root.trace_id != TRACE_ID
        traced = [line for line in admission_lines(process) if line["webhook"] == "validate"]
        assert [line["trace_id"] for line in traced] == [TRACE_ID]
    finally:
        stop_gracefully(process)


@pytest.mark.slow
def test_without_an_endpoint_nothing_is_sent(tmp_path: Path, receiver: HttpReceiver) -> None:
    process = start_process(tmp_path)
    try:
        with process.client() as client:
            for _ in range(5):
                answer = client.post(
                    "/validate",
                    json=review(pod("web", "shop")),
                    headers={"traceparent": TRACEPARENT},
                )
                assert answer.status_code == 200, answer.text
    finally:
        stop_gracefully(process)  # a batch processor would flush at exit
    assert receiver.collected.requests == 0
    lines = admission_lines(process)
    assert len(lines) == 5
    assert all("trace_id" not in line for line in lines)
    assert '"tracing": null' in process.log() or '"tracing":null' in process.log()
