"""Each built-in policy's example (shown by `podgate explain`) is true: the
failing manifest fails that policy, its fix passes it."""

from __future__ import annotations

import pytest

from policies.config import load_config
from policies.model import Outcome
from policies.plugins import builtin_registry
from webhook.cli.check import check_documents
from webhook.cli.manifests import parse_text

POLICIES = sorted(builtin_registry().policies)


def _outcomes(text: str, policy: str) -> set[Outcome]:
    config = load_config()
    documents = list(parse_text(text, "example.yaml"))
    assert all(d.obj is not None for d in documents), [d.error for d in documents]
    return {
        result.outcome
        for checked in check_documents(documents, config)
        for result in checked.results
        if result.policy == policy
    }


@pytest.mark.parametrize("policy", POLICIES)
def test_every_builtin_policy_has_an_example_that_holds(policy: str) -> None:
    example = builtin_registry().policies[policy].meta.example
    assert example is not None, f"{policy} has no example for podgate explain"
    assert _outcomes(example.fails, policy) == {Outcome.FAIL}
    assert _outcomes(example.passes, policy) == {Outcome.PASS}
