"""Label selectors: the documented cases, then properties against a reference model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.config import ConfigFile, resolve
from policies.engine import evaluate
from policies.model import NetworkPolicyInfo, StaticContext
from policies.plugins import builtin_registry
from policies.selectors import InvalidSelector, selector_matches

LABELS = {"app": "web", "tier": "front"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        (None, False),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}],
            },
            False,
        ),
    ],
)
def test_selector_semantics(selector: dict[str, Any] | None, expected: bool) -> None:
    assert selector_matches(selector, LABELS) is expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"matchExpressions": [{"key": "app", "operator": "Matches"}]}, "operator 'Matches'"),
        ({"matchExpressions": [{"key": "app", "operator": "In"}]}, "must be non-empty"),
        (
            {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]},
            "must be empty",
        ),
        ({"matchExpressions": [{"operator": "Exists"}]}, "key must be a non-empty string"),
        ({"matchLabels": {"app": 1}}, "matchLabels must map strings to strings"),
        ({"matchExpressions": "app"}, "matchExpressions must be a list"),
    ],
)
def test_invalid_selectors_say_why(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSelector, match=message):
        selector_matches(selector, LABELS)


keys = st.sampled_from(["app", "tier", "env", "team"])
values = st.sampled_from(["a", "b", "c"])
label_sets = st.dictionaries(keys, values, max_size=4)


@st.composite
def requirements(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    requirement: dict[str, Any] = {"key": draw(keys), "operator": operator}
    if operator in ("In", "NotIn"):
        requirement["values"] = draw(st.lists(values, min_size=1, max_size=3))
    return requirement


def reference(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """apimachinery's semantics written out the slow, obvious way."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for r in selector.get("matchExpressions", []):
        present = r["key"] in labels
        ok = {
            "In": present and labels.get(r["key"]) in r.get("values", []),
            "NotIn": not present or labels.get(r["key"]) not in r.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[r["operator"]]
        if not ok:
            return False
    return True


@given(
    match_labels=st.dictionaries(keys, values, max_size=3),
    expressions=st.lists(requirements(), max_size=4),
    labels=label_sets,
)
def test_matches_reference(
    match_labels: dict[str, str], expressions: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    selector = {"matchLabels": match_labels, "matchExpressions": expressions}
    assert selector_matches(selector, labels) is reference(selector, labels)


@given(selector_labels=st.dictionaries(keys, values, max_size=3), labels=label_sets)
def test_adding_labels_to_a_selected_pod_keeps_it_selected_by_match_labels(
    selector_labels: dict[str, str], labels: dict[str, str]
) -> None:
    merged = {**labels, **selector_labels}
    assert selector_matches({"matchLabels": selector_labels}, merged)


@given(labels=label_sets, expressions=st.lists(requirements(), max_size=4))
def test_requirements_are_a_conjunction(
    labels: dict[str, str], expressions: list[dict[str, Any]]
) -> None:
    whole = selector_matches({"matchExpressions": expressions}, labels)
    each = all(selector_matches({"matchExpressions": [e]}, labels) for e in expressions)
    assert whole is each


class _ListContext(StaticContext):
    """Hands out NetworkPolicies as a list, which require-network-policy scans whole."""

    def network_policies(self, namespace: str) -> Sequence[NetworkPolicyInfo]:
        return list(super().network_policies(namespace))


selectors = st.one_of(
    st.none(),  # a null podSelector: selects nothing
    st.fixed_dictionaries(
        {},
        optional={
            "matchLabels": st.dictionaries(keys, values, max_size=2),
            "matchExpressions": st.lists(requirements(), max_size=2),
        },
    ),
    st.just({"matchExpressions": [{"key": "app", "operator": "Matches"}]}),  # invalid
)
network_policies = st.lists(
    st.tuples(selectors, st.sampled_from([{"Ingress"}, {"Egress"}, {"Ingress", "Egress"}])),
    max_size=12,
)


@given(policies=network_policies, labels=label_sets, both=st.booleans())
def test_the_label_index_finds_what_a_full_scan_finds(
    policies: list[tuple[dict[str, Any] | None, set[str]]], labels: dict[str, str], both: bool
) -> None:
    """require-network-policy looks a pod's NetworkPolicies up by label: its
    findings, invalid selectors included, must be those of a scan of all."""
    infos = tuple(
        NetworkPolicyInfo("shop", f"np-{i}", selector, frozenset(types))  # type: ignore[arg-type]
        for i, (selector, types) in enumerate(policies)
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }
    types = ["Ingress", "Egress"] if both else ["Ingress"]
    section = {"require-network-policy": {"policy_types": types}}
    config = resolve(ConfigFile.model_validate({"policies": section}), builtin_registry())

    def findings(ctx: StaticContext) -> list[str]:
        results = evaluate(pod, ctx, config, mutate=False).results
        (result,) = [r for r in results if r.policy == "require-network-policy"]
        return [str(v) for v in result.violations]

    indexed = StaticContext(policies=infos)
    assert isinstance(indexed.network_policies("shop"), tuple)
    assert findings(indexed) == findings(_ListContext(policies=infos))
