"""The PrometheusRule: off by default, valid for promtool, its alerts unit-tested
with `promtool test rules` (tests/chart/prometheus/*-test.yaml), over metrics
and label values podgate really exports."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.utils import floatToGoString

from tests.chart.exported import defined, exported_names
from tests.chart.helm import CHART, REPO, Rendered, render, scenario, template
from tests.chart.promtool import Rules, alerts, promtool, recordings, rule_file

ON = ["metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"]
TESTS = Path(__file__).parent / "prometheus"
# The rule files the unit tests read, by name: the values each is rendered with.
VARIANTS: dict[str, list[str]] = {
    "default-rules.yaml": ON,
    "failure-deny-rules.yaml": [*ON, "config.failure_action=deny"],
}
RUNBOOK_URL = "https://github.com/podgate/podgate/blob/main/docs/runbook.md"
# Series names PromQL reads: a name followed by `{` or `[` (every selector here has labels).
_SERIES = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'\b(\w+)(=~|!=|!~|=)"([^"]*)"')
# the kube-apiserver's own admission webhook metrics (k8s.io/apiserver
# pkg/admission/metrics, stable since 1.18-1.24): name, type, operation,
# error_type, rejection_code / code, rejected
APISERVER_METRICS = {
    "apiserver_admission_webhook_rejection_count",
    "apiserver_admission_webhook_fail_open_count",
    "apiserver_admission_webhook_admission_duration_seconds_bucket",
}


def _rules(*sets: str, values: list[Path] | None = None) -> Rules:
    return rule_file(render(values or [], [*ON, *sets]))


def _alert(rules: Rules, name: str) -> list[dict[str, Any]]:
    found = [a for a in alerts(rules) if a["alert"] == name]
    assert found, f"no alert {name}"
    return found


def _write(rules: Rules, path: Path) -> Path:
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def test_off_by_default() -> None:
    assert not render().of_kind("PrometheusRule")
    assert not render([scenario("default")]).of_kind("PrometheusRule")


def test_rendered_with_the_operator_s_labels() -> None:
    rendered: Rendered = render([scenario("everything-optional-enabled")])
    rule = rendered.get("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == rendered.namespace
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    for alert in alerts(rule_file(rendered)):
        assert alert["labels"]["team"] == "platform", alert["alert"]


RULE_VALUES = [
    pytest.param([], [], id="default"),
    pytest.param([scenario("everything-optional-enabled")], [], id="everything-optional"),
    pytest.param([], ["config.failure_action=deny"], id="failure-deny"),
    pytest.param(
        [],
        [
            "webhook.mutating.enabled=false",
            "audit.enabled=false",
            "metrics.prometheusRule.apiServer.enabled=false",
        ],
        id="minimal",
    ),
    pytest.param(
        [],
        [
            "webhook.deploy=false",
            "webhook.url=https://podgate.example:8443",
            "webhook.caBundle=Y2E=",
            "audit.enabled=false",
            'metrics.prometheusRule.webhookSelector=job="podgate-outside"',
        ],
        id="out-of-cluster",
    ),
]


@pytest.mark.parametrize(("values", "sets"), RULE_VALUES)
def test_promtool_check_rules(values: list[Path], sets: list[str], tmp_path: Path) -> None:
    rules = rule_file(render(values, [*ON, *sets]))
    checked = promtool("check", "rules", str(_write(rules, tmp_path / "rules.yaml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts(rules)) + len(recordings(rules))} rules found" in checked.stdout


def _run_unit_tests(test_file: Path, tmp_path: Path, extra: list[str]) -> tuple[int, str]:
    spec = yaml.safe_load(test_file.read_text())
    for name in spec["rule_files"]:
        assert name in VARIANTS, f"{test_file.name} reads {name}, which no variant renders"
        _write(rule_file(render([], [*VARIANTS[name], *extra])), tmp_path / name)
    shutil.copy(test_file, tmp_path / test_file.name)
    result = promtool("test", "rules", test_file.name, cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(TESTS.glob("*-test.yaml")), ids=lambda p: p.stem)
def test_promtool_unit_tests(test_file: Path, tmp_path: Path) -> None:
    code, output = _run_unit_tests(test_file, tmp_path, [])
    assert code == 0, output
    assert "SUCCESS" in output


def test_unit_tests_fail_on_other_objectives(tmp_path: Path) -> None:
    """The unit tests see the thresholds: a lax objective misses the burn they expect."""
    code, output = _run_unit_tests(
        TESTS / "default-test.yaml", tmp_path, ["metrics.prometheusRule.slo.availability=50"]
    )
    assert code != 0
    assert "PodgateAdmissionErrorBudgetBurn" in output


def test_every_alert_says_what_and_links_its_runbook_section() -> None:
    rules = _rules()
    names = {a["alert"] for a in alerts(rules)}
    assert names >= {
        "PodgateWebhookDown",
        "PodgateAdmissionErrorBudgetBurn",
        "PodgateDeniedForErrors",
        "PodgateAdmissionLatencyBudgetBurn",
        "PodgateAdmissionLatencyNearTimeout",
        "PodgateCertificateExpiry",
        "PodgateCacheNotSynced",
        "PodgateCacheStale",
        "PodgateConfigReloadFailed",
        "PodgateEventsDropped",
        "PodgatePolicyErrors",
        "PodgateAuditDown",
        "PodgateAuditPassStale",
        "PodgateWebhookCallsFailing",
        "PodgateWebhookFailingOpen",
    }
    for alert in alerts(rules):
        name = alert["alert"]
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}", name
        assert alert["labels"]["severity"] in ("warning", "critical"), name


def test_runbook_url_follows_the_value() -> None:
    rules = _rules("metrics.prometheusRule.runbookUrl=https://wiki.example/podgate")
    for alert in alerts(rules):
        assert alert["annotations"]["runbook_url"].startswith("https://wiki.example/podgate#")


def _series_names(rules: Rules) -> set[str]:
    exprs = [r["expr"] for r in alerts(rules) + recordings(rules)]
    names = {n for e in exprs for n in _SERIES.findall(e)}
    return {n for n in names if n not in ("by", "on", "rate", "increase", "sum", "max", "absent")}


def test_rules_read_only_metrics_that_exist() -> None:
    names = _series_names(_rules())
    recorded = {r["record"] for r in recordings(_rules())}
    podgate = {n for n in names if n.startswith("podgate_")}
    assert podgate, names
    assert podgate - exported_names() == set(), "rules read metrics podgate does not export"
    others = names - podgate - recorded - {"up"}
    assert others <= APISERVER_METRICS, others


def _sources() -> str:
    return "\n".join(
        p.read_text() for d in ("webhook", "policies") for p in (REPO / d).rglob("*.py")
    )


def test_label_values_are_those_podgate_uses() -> None:
    rules = _rules()
    used: dict[tuple[str, str], set[str]] = {}
    for rule in alerts(rules) + recordings(rules):
        for metric, matchers in _SELECTOR.findall(rule["expr"]):
            for label, _, value in _MATCHER.findall(matchers):
                used.setdefault((metric, label), set()).add(value)
    sources = _sources()
    requests = "podgate_admission_requests_total"
    assert used[(requests, "webhook")] == {"validate"}
    from webhook.server.handlers import Mutator, Validator

    assert {Validator.webhook, Mutator.webhook} == {"validate", "mutate"}  # the label's values
    assert used[(requests, "decision")] == {"error"}
    labelled_error = re.search(r'Answer\([^\n]*, "error"[,)]', sources)
    assert labelled_error, "no answer is labelled decision=error"
    results = "podgate_policy_results_total"
    assert used[(results, "result")] <= {str(o) for o in defined("Outcome")}
    assert used[(results, "action")] <= {str(a) for a in defined("Action")}
    assert used[("podgate_config_reloads_total", "result")] == {"failure"}
    assert 'CONFIG_RELOADS.labels("failure")' in sources
    # `le` as podgate's histogram spells its bounds ("1.0", not "1")
    buckets = {floatToGoString(b) for b in defined("ADMISSION_BUCKETS")}  # type: ignore[no-untyped-call]
    assert used[("podgate_admission_duration_seconds_bucket", "le")] <= buckets
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    slo = schema["properties"]["metrics"]["properties"]["prometheusRule"]["properties"]["slo"]
    assert set(slo["properties"]["latencyThreshold"]["enum"]) <= buckets
    # the webhook names the API server labels its metrics with
    webhooks = (CHART / "templates" / "webhooks.yaml").read_text()
    for name in ("validate.podgate.dev", "mutate.podgate.dev"):
        assert f"name: {name}" in webhooks


def _expr(rules: Rules, name: str) -> str:
    return " ".join(a["expr"] for a in _alert(rules, name))


def test_thresholds_follow_the_webhook_timeouts_and_objectives(tmp_path: Path) -> None:
    near = _expr(_rules(), "PodgateAdmissionLatencyNearTimeout")
    assert 'webhook="validate"} > 2' in near  # 0.4 of 5 s
    assert 'webhook="mutate"} > 1.2' in near  # 0.4 of 3 s
    values = tmp_path / "values.yaml"  # --set reads 99.5 as a string
    values.write_text(
        "webhook: {validating: {timeoutSeconds: 10}, mutating: {enabled: false}}\n"
        "metrics: {prometheusRule: {slo: {availability: 99.5, latencyThreshold: '1.0'}}}\n"
    )
    changed = _rules(values=[values])
    near = _expr(changed, "PodgateAdmissionLatencyNearTimeout")
    assert 'webhook="validate"} > 4' in near
    assert "mutate" not in near
    assert "(14.4 * (1 - 99.5 / 100))" in _expr(changed, "PodgateAdmissionErrorBudgetBurn")
    slow = [
        r["expr"] for r in recordings(changed) if r["record"].startswith("podgate:admission_slow")
    ]
    assert slow
    assert all('le="1.0"' in e for e in slow)


def test_undecided_validations_count_as_refusals_only_with_failure_action_deny() -> None:
    def denied_for_error(rules: Rules) -> str:
        record = "podgate:admission_denied_for_error:ratio_rate5m"
        return str(next(r["expr"] for r in recordings(rules) if r["record"] == record))

    assert 'decision="error"' not in denied_for_error(_rules())
    assert 'decision="error"' in denied_for_error(_rules("config.failure_action=deny"))


def test_selectors_follow_the_values() -> None:
    rules = _rules(
        'metrics.prometheusRule.webhookSelector=cluster="eu1"\\,job="pg"',
        'metrics.prometheusRule.auditSelector=cluster="eu1"\\,job="pg-audit"',
        'metrics.prometheusRule.apiServer.selector=job="kube-apiserver"',
    )
    for rule in alerts(rules) + recordings(rules):
        for selector in re.findall(r"\b(?:podgate_\w+|up|apiserver_\w+)\{([^}]*)\}", rule["expr"]):
            assert selector.startswith(
                ('cluster="eu1",job="pg"', 'cluster="eu1",job="pg-audit"', 'job="kube-apiserver"')
            ), (rule.get("alert") or rule.get("record"), selector)
    assert 'up{cluster="eu1",job="pg-audit"}' in _expr(rules, "PodgateAuditDown")


def test_recorded_series_belong_to_this_release() -> None:
    rules = _rules()
    recorded = {r["record"] for r in recordings(rules)}
    for rule in recordings(rules):
        assert rule["labels"]["podgate_release"] == "podgate-system/rel-podgate", rule["record"]
    for alert in alerts(rules):
        for name in recorded:
            for selector in re.findall(re.escape(name) + r"\{([^}]*)\}", alert["expr"]):
                assert 'podgate_release="podgate-system/rel-podgate"' in selector, alert["alert"]


def test_optional_groups() -> None:
    names = {a["alert"] for a in alerts(_rules("audit.enabled=false"))}
    assert not {"PodgateAuditDown", "PodgateAuditPassStale"} & names
    groups = {g["name"] for g in _rules("metrics.prometheusRule.apiServer.enabled=false")["groups"]}
    assert "podgate-apiserver.alerts" not in groups


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["metrics.prometheusRule.enabled=true"],
            "needs metrics.prometheusRule.webhookSelector",
        ),
        (
            [
                *ON,
                "webhook.deploy=false",
                "webhook.url=https://podgate.example:8443",
                "webhook.caBundle=Y2E=",
                "audit.enabled=false",
            ],
            "needs metrics.prometheusRule.webhookSelector",
        ),
        (
            [
                "metrics.prometheusRule.enabled=true",
                'metrics.prometheusRule.webhookSelector=job="pg"',
            ],
            "needs metrics.prometheusRule.auditSelector",
        ),
        ([*ON, "metrics.prometheusRule.webhookSelector={job=pg}"], "webhookSelector"),
        ([*ON, "metrics.prometheusRule.slo.latencyThreshold=0.3"], "latencyThreshold"),
        ([*ON, "metrics.prometheusRule.slo.availability=100"], "availability"),
        ([*ON, "metrics.prometheusRule.runbookUrl=https://x/runbook.md#top"], "runbookUrl"),
    ],
)
def test_rules_that_could_not_work_are_refused(sets: list[str], message: str) -> None:
    result = template(sets=sets)
    assert result.returncode != 0, sets
    assert message in result.stderr, result.stderr


def test_the_rules_tests_are_where_the_docs_say() -> None:
    readme = (REPO / "chart" / "README.md").read_text()
    assert "tests/chart/prometheus/" in readme
