"""Every fixture under tests/policies/<id>/, through the same runner as `podgate test`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from policies.plugins import builtin_registry
from webhook.cli.suites import Case, discover
from webhook.cli.testing import run_case

FIXTURES = Path(__file__).parent / "policies"
CASES = list(discover([str(FIXTURES)], builtin_registry()))


@pytest.mark.parametrize("case", CASES, ids=[f"{Path(c.suite).name}/{c.name}" for c in CASES])
def test_fixture(case: Case) -> None:
    outcome = run_case(case)
    assert outcome.ok, "\n".join(outcome.details)


def test_every_builtin_has_at_least_eight_fixtures() -> None:
    counts = Counter(Path(c.suite).name for c in CASES)
    for entry in builtin_registry():
        assert counts[entry.meta.id] >= 8, f"{entry.meta.id} has {counts[entry.meta.id]} fixtures"


def test_every_policy_has_pass_and_fail_fixtures() -> None:
    for pid in builtin_registry().policies:
        results = {c.result for c in CASES if Path(c.suite).name == pid}
        assert {"pass", "fail"} <= results, f"{pid} fixtures cover only {results}"
