"""examples/presets/: podgate configured with Kyverno's and with Polaris'
verdicts, each with a suite of cases written from that peer's
documentation, run here as CI runs everything: `podgate test`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from policies.config import ConfigFile, load_config
from policies.plugins import builtin_registry
from tests.cli.conftest import Runner
from webhook.cli.suites import Case, discover, scoped
from webhook.cli.testing import run_case

PRESETS = Path(__file__).parents[2] / "examples" / "presets"


@pytest.mark.parametrize("peer", ["kyverno", "polaris"])
def test_the_suite_of_each_preset_passes(podgate: Runner, peer: str) -> None:
    run = podgate("test", str(PRESETS / "tests" / peer))
    assert run.code == 0, run.out
    assert run.out.splitlines()[-1].endswith("passed, 0 failed")


@pytest.mark.parametrize("peer", ["kyverno", "polaris"])
def test_each_preset_configures_every_builtin_policy(peer: str) -> None:
    config = load_config(PRESETS / f"{peer}.yaml")
    assert set(builtin_registry().policies) <= set(config.raw.policies)


def _with_defaults(case: Case) -> Case:
    """The case judged by podgate's own defaults instead of the preset's (its
    outcome: the actions differ by design)."""
    assert case.policy is not None
    config = scoped(case.config.registry, ConfigFile(), {case.policy}, "defaults")
    return replace(case, config=config, action=None)


# Where each peer's verdict is not podgate's default one: the cases whose
# outcome the preset changes. If a preset stopped mattering, these would pass.
DIFFERENT_FROM_THE_DEFAULTS = {
    "kyverno": {
        "require-resources on Pod/limits-only",
        "require-probes on Pod/startup-probe-only",
        "require-probes on Deployment/sidecar-without-probes",
        "require-non-root on Pod/non-root-flag-with-uid-0",
        "require-image-digest on Pod/sha512-digest",
        "require-network-policy on Deployment/wide/web",
    },
    "polaris": {
        "require-resources on Deployment/all-four",  # its init container
        "require-resources on Deployment/no-cpu-limit",
        "require-resources on Pod/limits-only",
        "require-probes on Deployment/both-probes",
        "require-non-root on Pod/uid-only",
        "require-network-policy on Deployment/locked/web",
        "require-network-policy on Deployment/half/cache",
    },
}


@pytest.mark.parametrize("peer", ["kyverno", "polaris"])
def test_the_presets_are_what_make_their_suites_pass(peer: str) -> None:
    cases = [c for c in discover([str(PRESETS / "tests" / peer)]) if c.policy in
             builtin_registry().policies]  # fmt: skip
    flipped = {
        case.name.split(": ", 1)[1] for case in cases if not run_case(_with_defaults(case)).ok
    }
    assert flipped == DIFFERENT_FROM_THE_DEFAULTS[peer]
