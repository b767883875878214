"""Optional OpenTelemetry tracing of admissions: off unless an OTLP endpoint is named.

Tracing is on when `podgate serve --otlp-endpoint URL` is given or the
standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
is set (and `OTEL_SDK_DISABLED` is not `true`). Only then is the SDK imported
(webhook.telemetry.otel, from `start_tracing`): when off, a handler's tracer
is None and an admission pays one `is None` test. Spans go out as OTLP over
HTTP/protobuf, the transport the OpenTelemetry specification makes the
default (docs/adr/0009-tracing.md says why not gRPC).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from policies.model import PolicyResult

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
PROTOCOL = "http/protobuf"
TRACES_PATH = "/v1/traces"


class TracingUnusable(ValueError):
    """Tracing was asked for and cannot work; the message says what to change."""


@dataclass(frozen=True)
class TracingSettings:
    """Plain values, so they cross a worker's spawn.

    `endpoint` is the full URL spans are posted to; None leaves it to the
    exporter, which reads the OTEL_EXPORTER_OTLP_* variables. `sample_ratio`
    is the share of traces podgate starts itself (requests without a sampled
    or unsampled `traceparent`); a request that carries one follows its
    caller's decision. None leaves the sampler to `OTEL_TRACES_SAMPLER`,
    whose default is the same parent-based rule with every root sampled.
    """

    endpoint: str | None = None
    sample_ratio: float | None = None


def traces_url(endpoint: str) -> str:
    """`--otlp-endpoint` is a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: the
    traces path is added unless the URL already ends with it."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def tracing_settings(
    endpoint: str | None, sample_ratio: float | None, environ: Mapping[str, str]
) -> TracingSettings | None:
    """What `serve` traces with, None when tracing is off, or TracingUnusable."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" and not endpoint:
        return None
    from_env = next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)
    if not endpoint and not from_env:
        if sample_ratio is not None:
            raise TracingUnusable(
                "--trace-sample-ratio needs --otlp-endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)"
            )
        return None
    for variable in PROTOCOL_VARIABLES:
        protocol = environ.get(variable, "").strip()
        if protocol and protocol != PROTOCOL:
            raise TracingUnusable(
                f"{variable}={protocol}: podgate exports traces as {PROTOCOL} only; "
                "point it at the collector's OTLP/HTTP port (4318) and unset the variable"
            )
    url = endpoint or from_env or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        source = "--otlp-endpoint" if endpoint else "the OTEL_EXPORTER_OTLP_* endpoint"
        raise TracingUnusable(
            f"{source} {url!r} is not an http(s) URL; give the collector's OTLP/HTTP "
            "address, e.g. http://otel-collector.observability:4318"
        )
    if sample_ratio is not None and not 0.0 <= sample_ratio <= 1.0:
        raise TracingUnusable(f"--trace-sample-ratio {sample_ratio:g} is not between 0 and 1")
    if importlib.util.find_spec("opentelemetry.sdk") is None or (
        importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is None
    ):
        raise TracingUnusable(
            "tracing needs the OpenTelemetry SDK and OTLP exporter: pip install 'podgate[tracing]'"
        )
    return TracingSettings(traces_url(endpoint) if endpoint else None, sample_ratio)


class AdmissionSpan(Protocol):
    """One admission request's span, filled in by whoever learns each part."""

    @property
    def trace_id(self) -> str:
        """32 hex digits (the caller's trace when it sent a `traceparent`)."""
        ...

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
    ) -> None: ...

    def refused(self, code: int, reason: str) -> None: ...

    def end(self) -> None: ...


class AdmissionTracer(Protocol):
    def start(self, webhook: str, header: Callable[[str], str | None]) -> AdmissionSpan:
        """A span for one request, the child of its `traceparent` header if any."""
        ...

    def shutdown(self) -> None:
        """Send what is buffered (briefly) and stop exporting."""
        ...


def start_tracing(settings: TracingSettings) -> AdmissionTracer:
    """The tracer that exports to the OTLP endpoint: the only door to the SDK."""
    from webhook.telemetry.otel import OtelTracer

    return OtelTracer.exporting(settings.endpoint, settings.sample_ratio)
