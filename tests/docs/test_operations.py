"""docs/runbook.md, docs/troubleshooting.md and docs/slo.md stay true: every
shell command is run by the e2e suite or says what it needs, every alert has
its runbook section, every link lands on a heading, every PromQL expression is
valid for promtool, and those given as the chart's rules are the rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.helm import render
from tests.chart.promtool import Rules, alerts, promtool, recordings, rule_file
from tests.docs.blocks import (
    OPERATIONS_DOCS,
    REPO,
    SHELL,
    Block,
    blocks,
    broken_links,
    headings,
    section,
    slug,
)

RUNBOOK = OPERATIONS_DOCS[0]
SLO = REPO / "docs" / "slo.md"
DOCS = (*OPERATIONS_DOCS, SLO)
# the runbook's release: `podgate` in `podgate-system`, scraped by the chart's
# ServiceMonitor, every optional group of rules on
RUNBOOK_VALUES = ["metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"]


def _runbook_rules() -> Rules:
    return rule_file(render([], RUNBOOK_VALUES, release="podgate"))


def _all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc)]


def _normal(expr: str) -> str:
    return " ".join(expr.split())


def test_every_shell_block_is_run_by_e2e_or_says_what_it_needs() -> None:
    shell = [b for doc in OPERATIONS_DOCS for b in blocks(doc) if b.lang in SHELL]
    assert len(shell) > 20
    unmarked = [b.where for b in shell if b.marker not in ("e2e", "node", "needs")]
    assert unmarked == [], "shell blocks neither run by e2e (e2e:, node:) nor marked needs:"
    # every block of the docs is fenced with a language: nothing escapes this check
    assert [b.where for b in _all_blocks() if not b.lang] == []


def test_one_scenario_id_is_one_command_text() -> None:
    seen: dict[str, Block] = {}
    scenarios = (b for doc in OPERATIONS_DOCS for b in blocks(doc) if b.marker in ("e2e", "node"))
    for block in scenarios:
        assert block.label is not None
        first = seen.setdefault(block.label, block)
        assert first.text == block.text, f"{block.where} reuses id {block.label} of {first.where}"


def test_every_alert_has_its_runbook_section() -> None:
    rules = _runbook_rules()
    anchors = {slug(h): h for h in headings(RUNBOOK)}
    names = sorted({a["alert"] for a in alerts(rules)})
    assert len(names) >= 15
    for alert in alerts(rules):
        fragment = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert fragment in anchors, f"{alert['alert']}: no runbook heading for #{fragment}"
    for name in names:
        text = section(RUNBOOK, name)
        for part in ("**Meaning.**", "**Confirm", "itigate", "**Recover.**"):
            assert part in text, f"runbook section {name} lacks {part}"
        labelled = [b for b in blocks(RUNBOOK) if b.marker == "rule" and b.label == name]
        assert labelled, f"runbook section {name} does not show the alert's expression"


def test_links_between_the_pages_land_on_headings() -> None:
    for doc in DOCS:
        assert broken_links(doc) == [], doc.name


def test_promql_labelled_as_a_rule_is_that_rule() -> None:
    rules = _runbook_rules()
    by_name: dict[str, list[str]] = {}
    for rule in alerts(rules) + recordings(rules):
        name = rule.get("alert") or rule["record"]
        by_name.setdefault(name, []).append(_normal(rule["expr"]))
    labelled = [b for b in _all_blocks() if b.marker == "rule"]
    assert len(labelled) >= 15
    for block in labelled:
        assert block.lang == "promql", block.where
        assert block.label in by_name, f"{block.where}: the chart has no rule {block.label}"
        assert _normal(block.text) in by_name[block.label], (
            f"{block.where}: not the chart's {block.label} rule; it renders as\n"
            + "\n".join(by_name[block.label])
        )


def test_every_promql_expression_is_valid(tmp_path: Path) -> None:
    exprs = [b for b in _all_blocks() if b.lang == "promql"]
    assert len(exprs) > 25
    rules = {
        "groups": [
            {
                "name": "docs",
                "rules": [
                    {"record": f"docs:expr_{n}", "expr": b.text} for n, b in enumerate(exprs)
                ],
            }
        ]
    }
    file = tmp_path / "docs-rules.yaml"
    file.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(file))
    where = "\n".join(f"docs:expr_{n} = {b.where}" for n, b in enumerate(exprs))
    assert checked.returncode == 0, checked.stdout + checked.stderr + "\n" + where


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_pointed_to_from_the_readmes(doc: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    chart = (REPO / "chart" / "README.md").read_text(encoding="utf-8")
    assert f"docs/{doc.name}" in readme
    assert f"docs/{doc.name}" in chart
