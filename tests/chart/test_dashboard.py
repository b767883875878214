"""The Grafana dashboard ConfigMap: valid JSON over podgate_ metrics only."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.chart.exported import exported_names
from tests.chart.helm import render, scenario

_METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")  # every query selects by namespace


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


def test_dashboard_metrics_exist_in_podgate() -> None:
    used = {n for exprs in _exprs(_dashboard()).values() for e in exprs for n in _metrics(e)}
    assert used - exported_names() == set(), "the dashboard queries metrics podgate does not export"
