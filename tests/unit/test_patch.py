"""JSON Patch: minimal, correctly escaped, and what it produces is what the mutators made."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import jsonpatch
from hypothesis import given
from hypothesis import strategies as st

from policies.config import load_config
from policies.copies import deep_copy
from policies.engine import evaluate
from policies.model import OFFLINE
from policies.patch import apply_patch, diff, escape

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet="ab/~c", max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@given(json_values, json_values)
def test_patch_turns_original_into_target(original: Any, target: Any) -> None:
    ops = diff(original, target)
    assert jsonpatch.apply_patch(copy.deepcopy(original), ops) == target
    assert apply_patch(copy.deepcopy(original), ops) == target


@given(json_values)
def test_no_change_no_operations(value: Any) -> None:
    assert diff(value, copy.deepcopy(value)) == []


@given(json_values, json_values)
def test_patch_is_minimal_per_path(original: Any, target: Any) -> None:
    ops = diff(original, target)
    paths = [op["path"] for op in ops]
    assert len(paths) == len(set(paths)), "one operation per path"
    for op in ops:
        if op["op"] != "remove":
            # applying everything but this op must leave the document different
            rest = [o for o in ops if o is not op]
            partial = jsonpatch.apply_patch(copy.deepcopy(original), rest)
            assert as_json(partial) != as_json(target)


def as_json(value: Any) -> str:
    """JSON's view of equality: false is not 0, 1.0 is not 1 (Python's == says they are)."""
    return json.dumps(value, sort_keys=True)


def test_escaping_of_slash_and_tilde() -> None:
    assert escape("nvidia.com/gpu") == "nvidia.com~1gpu"
    assert escape("a~b/c") == "a~0b~1c"
    ops = diff({"limits": {}}, {"limits": {"nvidia.com/gpu": 1, "x~y": 2}})
    assert {op["path"] for op in ops} == {"/limits/nvidia.com~1gpu", "/limits/x~0y"}


def test_true_and_one_are_different_json() -> None:
    assert diff({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]


containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "c"]), "image": st.just("nginx")},
        optional={
            "resources": st.fixed_dictionaries(
                {},
                optional={
                    "requests": st.dictionaries(
                        st.sampled_from(["cpu", "memory"]),
                        st.sampled_from(["10m", "1", "64Mi", "2Gi"]),
                    ),
                    "limits": st.dictionaries(
                        st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]),
                        st.sampled_from(["10m", "1", "64Mi", "2Gi"]),
                    ),
                },
            ),
            "securityContext": st.fixed_dictionaries(
                {},
                optional={
                    "runAsNonRoot": st.booleans(),
                    "runAsUser": st.sampled_from([0, 1000]),
                    "privileged": st.booleans(),
                    "allowPrivilegeEscalation": st.booleans(),
                },
            ),
        },
    ),
    min_size=1,
    max_size=3,
)

CONFIG = load_config()


@given(containers, containers)
def test_mutations_are_idempotent_and_patch_reproduces_them(
    regular: list[dict[str, Any]], init: list[dict[str, Any]]
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": regular, "initContainers": init},
    }
    original = copy.deepcopy(pod)
    decision = evaluate(pod, OFFLINE, CONFIG, validate=False)
    assert pod == original, "the engine never changes its input"
    assert decision.mutated is not None
    assert jsonpatch.apply_patch(copy.deepcopy(pod), list(decision.patch)) == decision.mutated
    again = evaluate(decision.mutated, OFFLINE, CONFIG, validate=False)
    assert again.patch == ()


def test_type_only_changes_deep_inside_equal_looking_values() -> None:
    original = {"a": [1, {"b": 1}], "c": {"x": 1, "y": 2}}
    mutated = {"a": [True, {"b": 1.0}], "c": {"y": 2, "x": 1}}
    ops = diff(original, mutated)
    assert sorted(op["path"] for op in ops) == ["/a/0", "/a/1/b"]
    assert jsonpatch.apply_patch(copy.deepcopy(original), ops) == mutated


def test_values_orjson_cannot_write_are_compared_by_the_fallbacks() -> None:
    big = 2**70  # past 64 bits: orjson refuses it, marshal does not
    assert diff({"a": [big, 1]}, {"a": [big, True]}) == [
        {"op": "replace", "path": "/a/1", "value": True}
    ]
    assert diff({"a": {1: "x"}}, {"a": {1: "x"}}) == []  # a non-string key


def strict(value: Any) -> Any:
    """The value with its types spelled out, so that True, 1 and 1.0 differ."""
    if isinstance(value, dict):
        return ("dict", [(k, strict(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [strict(v) for v in value])
    return (type(value).__name__, repr(value))


def nodes(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(n for v in value.values() for n in nodes(v))]
    if isinstance(value, list):
        return [value, *(n for v in value for n in nodes(v))]
    return []


copyable = st.recursive(
    json_scalars | st.floats() | st.integers(min_value=2**64, max_value=2**80),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)
    ),
    max_leaves=12,
)


@given(copyable)
def test_json_copy_keeps_every_type_and_shares_no_container(value: Any) -> None:
    """NaN, infinities, tuples, big integers and non-string keys do not
    survive a trip through JSON: the copy must notice and take another way."""
    copied = deep_copy(value)
    assert strict(copied) == strict(value)
    original_ids = {id(n) for n in nodes(value)}
    assert not any(id(n) in original_ids for n in nodes(copied))


def test_json_copy_of_nan_keeps_nan() -> None:
    copied = deep_copy({"a": [float("nan"), float("inf")]})
    assert math.isnan(copied["a"][0])
    assert copied["a"][1] == float("inf")
