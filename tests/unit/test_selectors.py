"""Label selectors: the documented cases, then properties against a reference model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
