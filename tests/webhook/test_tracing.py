"""Tracing of admissions: when it is on, what a span holds, and that off costs no import.

The spans here come from the real handlers through `admit`, exported by the
SDK's in-memory exporter; tests/integration/test_tracing.py sends them over
OTLP from a real server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from policies.model import OFFLINE
from tests.integration.harness import BASE_CONFIG
from tests.integration.reviews import pod, review
from webhook.server.app import MAX_BODY, admit
from webhook.server.deadline import AlarmDeadline
from webhook.server.handlers import Handler, Mutator, Validator
from webhook.server.reload import ConfigHolder
from webhook.telemetry.logs import ADMISSION_LOGGER
from webhook.telemetry.otel import MAX_ATTRIBUTE_CHARS, OtelTracer
from webhook.telemetry.tracing import TracingSettings, TracingUnusable, tracing_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-01"
UNSAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-00"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def handlers(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[tuple[Validator, Mutator]]:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(BASE_CONFIG)
    config = ConfigHolder(str(config_path))
    tracer = OtelTracer.with_processor(SimpleSpanProcessor(exporter), None)
    deadline = AlarmDeadline()
    context = OFFLINE
    yield (
        Validator(config, context, deadline, tracer=tracer),
        Mutator(config, context, deadline, tracer=tracer),
    )
    tracer.shutdown()
    deadline.close()


def post(handler: Handler, body: Any, **headers: str) -> int:
    data = json.dumps(body).encode()
    sent = {"content-type": "application/json", **headers}

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    reply = asyncio.run(admit(handler, sent.get, chunks(), MAX_BODY, lambda: False))
    return reply.status


def only_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


def test_a_span_continues_the_callers_trace(
    handlers: tuple[Validator, Mutator], exporter: InMemorySpanExporter
) -> None:
    validator, _ = handlers
    request = review(pod("web", "shop"), dry_run=True)
    assert post(validator, request, traceparent=SAMPLED) == 200
    span = only_span(exporter, "podgate validate")
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote
    attributes = dict(span.attributes or {})
    assert attributes["podgate.webhook"] == "validate"
    assert attributes["podgate.kind"] == "Pod"
    assert attributes["podgate.namespace"] == "shop"
    assert attributes["podgate.uid"] == request["request"]["uid"]
    assert attributes["podgate.operation"] == "CREATE"
    assert attributes["podgate.dry_run"] is True
    assert attributes["http.response.status_code"] == 200
    # the offline context: require-network-policy skips, require-image-digest passes
    policies = attributes["podgate.policies"]
    assert isinstance(policies, tuple)
    assert {"require-resources", "require-probes", "require-image-digest"} <= set(policies)


def test_each_policy_is_an_event_with_its_outcome_and_duration(
    handlers: tuple[Validator, Mutator], exporter: InMemorySpanExporter
) -> None:
    validator, _ = handlers
    bad = pod("web", "shop")
    del bad["spec"]["containers"][0]["readinessProbe"]
    post(validator, review(bad))
    span = only_span(exporter, "podgate validate")
    attributes = dict(span.attributes or {})
    assert attributes["podgate.decision"] == "allowed"  # require-probes is audit here
    assert attributes["podgate.policies.failed"] == ("require-probes:audit",)
    events = {e.attributes["podgate.policy"]: e for e in span.events if e.attributes}
    probes = events["require-probes"].attributes
    assert probes is not None
    assert probes["podgate.outcome"] == "fail"
    assert probes["podgate.action"] == "audit"
    assert isinstance(probes["podgate.duration_ms"], float)
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= events["require-probes"].timestamp <= span.end_time
    # nothing of the object beyond what identifies it
    text = json.dumps(
        [dict(span.attributes or {})] + [dict(e.attributes or {}) for e in span.events]
    )
    assert "registry.example.com" not in text
    assert "readinessProbe" not in text


def test_a_policy_that_raises_is_a_child_span_with_an_error(
    handlers: tuple[Validator, Mutator], exporter: InMemorySpanExporter
) -> None:
    validator, _ = handlers
    obj = pod("web", "shop", annotations={"test.podgate.dev/explode": ""})
    post(validator, review(obj), traceparent=SAMPLED)
    parent = only_span(exporter, "podgate validate")
    child = only_span(exporter, "policy explode")
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id
    assert child.status.status_code is StatusCode.ERROR
    assert "kaboom" in (child.status.description or "")
    assert parent.start_time is not None
    assert child.start_time is not None
    assert parent.start_time <= child.start_time
    assert child.end_time is not None
    assert parent.end_time is not None
    assert child.end_time <= parent.end_time
    assert [s.name for s in exporter.get_finished_spans()].count("policy require-probes") == 0


def test_the_caller_decides_when_it_sent_an_unsampled_traceparent(
    handlers: tuple[Validator, Mutator], exporter: InMemorySpanExporter
) -> None:
    validator, _ = handlers
    post(validator, review(pod("web", "shop")), traceparent=UNSAMPLED)
    assert exporter.get_finished_spans() == ()


def test_without_a_traceparent_podgate_starts_a_trace(
    handlers: tuple[Validator, Mutator], exporter: InMemorySpanExporter
) -> None:
    _, mutator = handlers
    post(mutator, review(pod("web", "shop")))
    span = only_span(exporter, "podgate mutate")
    assert span.parent is None


def test_a_refused_request_says_why_within_bounds(
    handlers: tuple[Validator, Mutator], exporter: InMemorySpanExporter
) -> None:
    validator, _ = handlers
    assert post(validator, {"kind": "x" * 5000}, traceparent=SAMPLED) == 400
    span = only_span(exporter, "podgate validate")
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 400
    refused = attributes["podgate.refused"]
    assert isinstance(refused, str)
    assert len(refused) <= MAX_ATTRIBUTE_CHARS


def test_the_admission_log_line_carries_the_trace_id(
    handlers: tuple[Validator, Mutator], caplog: pytest.LogCaptureFixture
) -> None:
    validator, _ = handlers
    with caplog.at_level(logging.INFO, logger=ADMISSION_LOGGER):
        post(validator, review(pod("web", "shop")), traceparent=SAMPLED)
    fields = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "admission"]
    assert [f["trace_id"] for f in fields] == [TRACE_ID]


def test_the_sample_ratio_applies_to_traces_podgate_starts(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(BASE_CONFIG)
    tracer = OtelTracer.with_processor(SimpleSpanProcessor(exporter), 0.0)
    deadline = AlarmDeadline()
    try:
        validator = Validator(ConfigHolder(str(config_path)), OFFLINE, deadline, tracer=tracer)
        post(validator, review(pod("web", "shop")))
        assert exporter.get_finished_spans() == ()
        post(validator, review(pod("web", "shop")), traceparent=SAMPLED)
        assert len(exporter.get_finished_spans()) == 1  # parent-based: the caller's choice
    finally:
        tracer.shutdown()
        deadline.close()


# --- when tracing is on ----------------------------------------------------------------------


def test_tracing_is_off_by_default() -> None:
    assert tracing_settings(None, None, {}) is None
    assert tracing_settings(None, None, {"OTEL_SERVICE_NAME": "x"}) is None


def test_the_flag_or_the_standard_variables_turn_it_on() -> None:
    assert tracing_settings("http://collector:4318", 0.5, {}) == TracingSettings(
        "http://collector:4318/v1/traces", 0.5
    )
    assert tracing_settings("http://c:4318/v1/traces/", None, {}) == TracingSettings(
        "http://c:4318/v1/traces", None
    )
    # the exporter reads the variable itself
    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        assert tracing_settings(None, None, {variable: "https://c:4318"}) == TracingSettings()


def test_otel_sdk_disabled_turns_the_variables_off() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert tracing_settings(None, None, env) is None


@pytest.mark.parametrize(
    ("endpoint", "ratio", "env", "says"),
    [
        (None, 0.1, {}, "--trace-sample-ratio needs --otlp-endpoint"),
        ("collector:4317", None, {}, "is not an http(s) URL"),
        ("http://c:4318", 1.5, {}, "not between 0 and 1"),
        ("http://c:4318", None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
        (None, None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317"}, "OTEL_EXPORTER_OTLP_*"),
    ],
)
def test_what_cannot_work_is_refused_with_the_reason(
    endpoint: str | None, ratio: float | None, env: dict[str, str], says: str
) -> None:
    with pytest.raises(TracingUnusable, match=re.escape(says)):
        tracing_settings(endpoint, ratio, env)


def test_serve_refuses_tracing_it_cannot_do_with_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "serve", "--self-signed", "--no-cluster",
         "--otlp-endpoint", "collector:4317"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--otlp-endpoint 'collector:4317' is not an http(s) URL" in proc.stderr


def test_when_off_the_sdk_is_never_imported(tmp_path: Path) -> None:
    # A worker as `serve` builds it, answering a review: the SDK and exporter
    # stay out of the process (FastAPI itself imports the OpenTelemetry API).
    script = f"""
import asyncio, json, sys
from pathlib import Path
from webhook.server import tls
from webhook.server.worker import Worker, WorkerSettings
from webhook.server.app import admit, MAX_BODY
from webhook.telemetry.health import Slots
from tests.integration.reviews import pod, review
certs = Path({str(tmp_path)!r})
tls.ensure_self_signed(certs, ["localhost"])
worker = Worker(WorkerSettings(str(certs / "tls.crt"), str(certs / "tls.key")), slots=Slots(1))
assert worker.tracer is None and worker.handlers.validator.tracer is None
body = json.dumps(review(pod("web", "shop"))).encode()
async def chunks():
    yield body
headers = {{"content-type": "application/json", "traceparent": {SAMPLED!r}}}
validator = worker.handlers.validator
reply = asyncio.run(admit(validator, headers.get, chunks(), MAX_BODY, lambda: False))
assert reply.status == 200, reply
loaded = ("opentelemetry.sdk", "opentelemetry.exporter")
print(sorted(m for m in sys.modules if m.startswith(loaded)))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
