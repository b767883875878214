"""The Grafana dashboard ConfigMap: valid JSON over podgate_ metrics only."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest

from tests.chart.helm import render, scenario

_METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")  # every query selects by namespace
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _dashboard() -> dict[str, Any]:
    rendered = render([scenario("everything-optional-enabled")])
    config_map = rendered.get("ConfigMap", "rel-podgate-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard: dict[str, Any] = json.loads(config_map["data"]["podgate.json"])
    return dashboard


def _exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}


def _metrics(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def test_dashboard_is_valid_and_uses_only_podgate_metrics() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "podgate-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for title, exprs in _exprs(dashboard).items():
        assert exprs, title
        for expr in exprs:
            names = _metrics(expr)
            assert names, expr
            assert all(n.startswith("podgate_") for n in names), (title, names)


def test_dashboard_has_the_panels_operators_need() -> None:
    exprs = {t: " ".join(e) for t, e in _exprs(_dashboard()).items()}
    rate = exprs["Admission rate by decision"]
    assert "podgate_admission_requests_total" in rate
    assert "by (decision)" in rate
    latency = exprs["Admission latency p50 / p99"]
    assert "histogram_quantile(0.99" in latency
    assert "podgate_admission_duration_seconds_bucket" in latency
    assert "by (policy" in exprs["Policy failures by policy"]
    assert "podgate_events_dropped_total" in exprs["Events dropped (1h)"]
    assert "podgate_cluster_cache_synced" in exprs["Cluster cache synced"]


def _exported_names() -> set[str]:
    """Sample names the webhook's and audit's collectors expose."""
    from prometheus_client import REGISTRY, CollectorRegistry

    names: set[str] = set()
    registries = [REGISTRY]
    for module_name in ("webhook.telemetry.metrics", "webhook.audit"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        registries += [v for v in vars(module).values() if isinstance(v, CollectorRegistry)]
    for registry in registries:
        for family in registry.collect():
            base = family.name
            names.add(base)
            names.update(base + suffix for suffix in _SUFFIXES)
    return names


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def test_dashboard_metrics_exist_in_podgate() -> None:
    if not _importable("webhook.telemetry.metrics"):
        pytest.skip("webhook.telemetry.metrics is not importable")
    exported = _exported_names()
    used = {n for exprs in _exprs(_dashboard()).values() for e in exprs for n in _metrics(e)}
    if not _importable("webhook.audit"):
        # The audit's gauges are defined with the audit; checked once it exists.
        used = {n for n in used if not n.startswith("podgate_audit_")}
    assert used - exported == set(), "the dashboard queries metrics podgate does not export"
