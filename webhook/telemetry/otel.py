"""The OpenTelemetry side of tracing: imported only when tracing is on.

One SERVER span per admission request, named `podgate validate` or `podgate
mutate`, the child of the caller's W3C `traceparent` (kube-apiserver sends one
when its own tracing samples the request). Its attributes say what was judged
and the answer, never what the object holds: kind, namespace, the request
uid, operation, dry run, the decision, the policies evaluated and those that
failed. Each policy is an event on the span, at the moment it started, with
its outcome and duration; a policy that raised or ran over its budget is also
a child span covering its run, with an error status. Every attribute is
bounded (SpanLimits), whatever a sender puts in a request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from policies.model import Outcome, PolicyResult

MAX_ATTRIBUTE_CHARS = 256
MAX_LIST_ITEMS = 64  # policy ids in one attribute; a registry is rarely near it
MAX_EVENTS = 64
LIMITS = SpanLimits(
    max_span_attributes=32,
    max_event_attributes=8,
    max_events=MAX_EVENTS,
    max_links=0,
    max_attribute_length=MAX_ATTRIBUTE_CHARS,
)
Header = Callable[[str], "str | None"]


class _HeaderGetter(Getter[Header]):
    """Reads the request's headers through the callable the routes pass around."""

    def get(self, carrier: Header, key: str) -> list[str] | None:
        value = carrier(key)
        return None if value is None else [value]

    def keys(self, carrier: Header) -> list[str]:
        return []  # only asked for by propagators that scan all headers; W3C does not


_GETTER = _HeaderGetter()
# W3C Trace Context alone: what kube-apiserver sends. Baggage is not read, so
# no caller can make podgate copy its values anywhere.
_PROPAGATOR = TraceContextTextMapPropagator()


def _bounded(items: Sequence[str]) -> tuple[str, ...]:
    if len(items) <= MAX_LIST_ITEMS:
        return tuple(items)
    return (*items[: MAX_LIST_ITEMS - 1], f"... and {len(items) - MAX_LIST_ITEMS + 1} more")


class OtelSpan:
    __slots__ = ("_offset_ns", "_span", "_tracer", "trace_id")

    def __init__(self, tracer: trace.Tracer, webhook: str, header: Header) -> None:
        parent = _PROPAGATOR.extract(header, getter=_GETTER)
        self._tracer = tracer
        self._span = tracer.start_span(
            f"podgate {webhook}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"podgate.webhook": webhook},
        )
        context = self._span.get_span_context()
        self.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        # The engine times policies with perf_counter; spans want epoch ns.
        self._offset_ns = time.time_ns() - time.perf_counter_ns()

    def record(
        self,
        *,
        kind: str,
        namespace: str,
        uid: str,
        operation: str,
        dry_run: bool,
        decision: str,
        results: Sequence[PolicyResult],
        note: str,
    ) -> None:
        span = self._span
        if not span.is_recording():  # not sampled: nothing to fill in
            return
        span.set_attributes(
            {
                "podgate.kind": kind,
                "podgate.namespace": namespace,
                "podgate.uid": uid,
                "podgate.operation": operation,
                "podgate.dry_run": dry_run,
                "podgate.decision": decision,
                "podgate.policies": _bounded([r.policy for r in results]),
                "podgate.policies.failed": _bounded(
                    [f"{r.policy}:{r.effective_action}" for r in results if r.failed]
                ),
                "http.response.status_code": 200,
            }
        )
        if note:
            span.set_attribute("podgate.note", note)
        if decision == "error":
            why = note or "podgate could not evaluate"
            span.set_status(Status(StatusCode.ERROR, why[:MAX_ATTRIBUTE_CHARS]))
        for result in results[:MAX_EVENTS]:
            self._policy(result)

    def _policy(self, result: PolicyResult) -> None:
        attributes: dict[str, str | float] = {
            "podgate.policy": result.policy,
            "podgate.outcome": str(result.outcome),
            "podgate.action": str(result.effective_action),
            "podgate.duration_ms": round(result.duration_s * 1000, 3),
        }
        if result.reason and result.outcome is not Outcome.PASS:
            attributes["podgate.reason"] = result.reason
        started = self._offset_ns + int(result.started * 1e9) if result.started else None
        self._span.add_event("policy", attributes, timestamp=started)
        if result.outcome is Outcome.ERROR and started is not None:
            # raised, or over its budget: worth a bar of its own in a trace view
            child = self._tracer.start_span(
                f"policy {result.policy}",
                context=trace.set_span_in_context(self._span),
                start_time=started,
                attributes=attributes,
            )
            child.set_status(Status(StatusCode.ERROR, result.reason[:MAX_ATTRIBUTE_CHARS]))
            child.end(end_time=started + int(result.duration_s * 1e9))

    def refused(self, code: int, reason: str) -> None:
        if self._span.is_recording():
            attributes: dict[str, str | int] = {
                "http.response.status_code": code,
                "podgate.refused": reason,
            }
            self._span.set_attributes(attributes)

    def end(self) -> None:
        self._span.end()


class OtelTracer:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("podgate", _version())

    @classmethod
    def exporting(cls, endpoint: str | None, sample_ratio: float | None) -> OtelTracer:
        """Batches spans to the OTLP/HTTP endpoint (None: the exporter reads
        OTEL_EXPORTER_OTLP_*) on a thread of its own."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint)), sample_ratio)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, sample_ratio: float | None) -> OtelTracer:
        provider = TracerProvider(
            sampler=_sampler(sample_ratio), resource=_resource(), span_limits=LIMITS
        )
        provider.add_span_processor(processor)
        return cls(provider)

    def start(self, webhook: str, header: Header) -> OtelSpan:
        return OtelSpan(self._tracer, webhook, header)

    def shutdown(self) -> None:
        # Bounded, so a collector that is down does not hold up the pod's exit.
        self.provider.force_flush(timeout_millis=2000)
        self.provider.shutdown()


def _sampler(sample_ratio: float | None) -> Sampler | None:
    if sample_ratio is None:
        return None  # the SDK reads OTEL_TRACES_SAMPLER; its default is parent-based
    return ParentBased(TraceIdRatioBased(sample_ratio))


def _resource() -> Resource:
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (e.g. the pod's name) win.
    attributes: dict[str, str] = {"service.version": _version()}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "podgate"
    return Resource.create(attributes)


def _version() -> str:
    try:
        return version("podgate")
    except PackageNotFoundError:
        return "unknown"
