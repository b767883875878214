"""Whatever a Pod creator writes in a field, the built-in policies and
mutations answer with a verdict, never an exception: a malformed quantity,
image or security context is a violation with a message, decided by the
policy's action, not an `error` decided by its failure action."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import StaticContext, evaluate
from policies.config import load_config
from policies.engine import INVALID_MANIFEST
from policies.model import Outcome

CONFIG = load_config()

# Values known to have broken a parser somewhere, tried in every field.
NASTY: list[Any] = [
    "1e9999999", "1e-9999999", "1e" + "9" * 5000, "9" * 400, "-1", "0x10", "100m", "1Ei",
    "nginx@sha256:" + "a" * 64, "a" * 2000, "UPPER:tag", "@", ":", "nginx:" + "t" * 200,
    "RuntimeDefault", "Always", "\x00", "", 10**30, -(2**63), float("inf"), float("nan"),
    1e308, True, None, [], {}, [None], {"": None}, [[[]]],
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(NASTY),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)

CONTAINER_FIELDS = [
    ("name",), ("image",), ("resources",), ("resources", "requests"),
    ("resources", "requests", "cpu"), ("resources", "limits", "memory"),
    ("securityContext",), ("securityContext", "runAsUser"), ("securityContext", "runAsNonRoot"),
    ("securityContext", "privileged"), ("livenessProbe",), ("readinessProbe",),
    ("restartPolicy",), ("ports",),
]  # fmt: skip
SPEC_FIELDS = [
    ("securityContext",), ("securityContext", "runAsUser"), ("resources",),
    ("resources", "limits", "cpu"), ("os",), ("os", "name"), ("restartPolicy",),
    ("initContainers",), ("ephemeralContainers",),
]  # fmt: skip
METADATA_FIELDS = [("labels",), ("annotations",), ("ownerReferences",), ("namespace",), ("name",)]


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "web", "image": "nginx:1.27", "resources": {"requests": {"cpu": "1"}}}
            ],
            "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Always"}],
        },
    }


def _put(node: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _never_an_error(obj: dict[str, Any]) -> None:
    original = copy.deepcopy(obj)
    decision = evaluate(obj, StaticContext(), CONFIG)
    errors = [
        (r.policy, r.reason)
        for r in decision.results
        if r.outcome is Outcome.ERROR and r.policy != INVALID_MANIFEST
    ]
    assert errors == []
    assert decision.mutation_errors == ()
    assert obj == original, "evaluation changed the caller's object"


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
def test_every_nasty_value_in_every_field(value: Any) -> None:
    for where in CONTAINER_FIELDS:
        obj = _pod()
        _put(obj["spec"]["containers"][0], where, value)
        _never_an_error(obj)
    for where in SPEC_FIELDS:
        obj = _pod()
        _put(obj["spec"], where, value)
        _never_an_error(obj)
    for where in METADATA_FIELDS:
        obj = _pod()
        _put(obj["metadata"], where, value)
        _never_an_error(obj)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(CONTAINER_FIELDS), value=values)
def test_any_value_in_a_container_field(where: tuple[str, ...], value: Any) -> None:
    obj = _pod()
    _put(obj["spec"]["containers"][0], where, value)
    _never_an_error(obj)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(SPEC_FIELDS), value=values)
def test_any_value_in_a_pod_spec_field(where: tuple[str, ...], value: Any) -> None:
    obj = _pod()
    _put(obj["spec"], where, value)
    _never_an_error(obj)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(METADATA_FIELDS), value=values)
def test_any_value_in_the_metadata(where: tuple[str, ...], value: Any) -> None:
    obj = _pod()
    _put(obj["metadata"], where, value)
    _never_an_error(obj)
