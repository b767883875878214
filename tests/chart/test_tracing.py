"""`webhook.tracing`: the chart runs `podgate serve --otlp-endpoint` only when
asked, with the pod named in the spans' resource; the schema refuses what
cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import container, render, template


def _webhook(sets: list[str], values: list[Path] | None = None) -> dict[str, Any]:
    rendered = render(values or (), sets=sets)
    return container(rendered.by_component("Deployment", "webhook")["spec"]["template"]["spec"])


def test_off_by_default() -> None:
    webhook = _webhook([])
    assert not any(a.startswith(("--otlp", "--trace")) for a in webhook["args"])
    assert all(not e["name"].startswith("OTEL_") for e in webhook["env"])


def test_on_it_names_the_collector_the_ratio_and_the_pod(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "webhook:\n  tracing:\n    enabled: true\n"
        "    endpoint: http://otel-collector.observability:4318\n    sampleRatio: 0.25\n"
    )
    webhook = _webhook([], [values])
    joined = " ".join(webhook["args"])
    assert "--otlp-endpoint http://otel-collector.observability:4318" in joined
    assert "--trace-sample-ratio 0.25" in joined
    env = {e["name"]: e.get("value") for e in webhook["env"]}
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"
    )
    # $(POD_NAME) expands only from a variable defined before it
    names = [e["name"] for e in webhook["env"]]
    assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")


@pytest.mark.parametrize(
    "sets",
    [
        ["webhook.tracing.enabled=true"],  # no endpoint
        ["webhook.tracing.enabled=true", "webhook.tracing.endpoint=otel-collector:4317"],
        ["webhook.tracing.sampleRatio=2"],
        ["webhook.tracing.protocol=grpc"],
    ],
)
def test_what_cannot_work_is_refused(sets: list[str]) -> None:
    result = template(sets=sets)
    assert result.returncode != 0, sets
