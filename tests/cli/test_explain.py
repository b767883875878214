"""`podgate explain ID` / `podgate policies ID`: a policy told in full."""

from __future__ import annotations

import pytest
import yaml

from policies.plugins import builtin_registry
from tests.cli.conftest import Runner


@pytest.mark.parametrize("entry_id", sorted(builtin_registry().ids()))
def test_every_builtin_is_explained_with_every_parameter(podgate: Runner, entry_id: str) -> None:
    run = podgate("explain", entry_id)
    assert run.code == 0, run.err
    meta = builtin_registry().policies.get(entry_id) or builtin_registry().mutations[entry_id]
    for name in meta.meta.params.model_fields:
        assert f"\n  {name}: " in run.out, f"{name} is not explained"
    assert podgate("policies", entry_id).out == run.out


def test_a_policy_shows_its_example_what_check_says_and_the_fix(podgate: Runner) -> None:
    run = podgate("explain", "require-probes")
    assert "  mode: all|any, default all\n" in run.out
    assert "  require: list of liveness|readiness|startup, default [liveness, readiness]" in run.out
    failing = run.out.split("Refused, for example:\n\n", 1)[1].split("\n\npodgate check says:")[0]
    assert yaml.safe_load(failing.replace("\n    ", "\n").strip())["kind"] == "Deployment"
    assert 'require-probes: container "web" has no livenessProbe' in run.out
    assert "Fixed:\n" in run.out


def test_the_configs_own_values_are_shown_beside_the_defaults(podgate: Runner) -> None:
    run = podgate("explain", "require-probes", "--set", "require-probes.mode=any", "-o", "json")
    mode = next(p for p in run.json()["params"] if p["name"] == "mode")
    assert (mode["default"], mode["value"]) == ("all", "any")
    text = podgate("explain", "require-probes", "--set", "require-probes.mode=any").out
    assert "  mode: all|any, default all (this config: any)" in text


def test_an_unknown_id_is_a_usage_error_listing_the_known(podgate: Runner) -> None:
    run = podgate("explain", "require-probs")
    assert run.code == 2
    assert "no policy or mutation 'require-probs' (known: default-resources" in run.err
