"""Kubernetes label selectors: matchLabels and matchExpressions.

Semantics follow apimachinery's LabelSelectorAsSelector: every requirement
must hold; an empty selector selects everything; a null selector nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class InvalidSelector(ValueError):
    """A selector the API server would have refused; the message says why."""


def _requirement(expr: object, index: int) -> tuple[str, str, frozenset[str]]:
    where = f"matchExpressions[{index}]"
    if not isinstance(expr, Mapping):
        raise InvalidSelector(f"{where} is not a mapping")
    key, operator, values = expr.get("key"), expr.get("operator"), expr.get("values")
    if not isinstance(key, str) or not key:
        raise InvalidSelector(f"{where}.key must be a non-empty string")
    if operator not in OPERATORS:
        raise InvalidSelector(f"{where}.operator {operator!r} is not one of {', '.join(OPERATORS)}")
    if values is None:
        values = []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidSelector(f"{where}.values must be a list of strings")
    if operator in ("In", "NotIn") and not values:
        raise InvalidSelector(f"{where}.values must be non-empty for operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise InvalidSelector(f"{where}.values must be empty for operator {operator}")
    return key, str(operator), frozenset(values)


class Selector:
    """A validated selector, compiled once and matched many times.

    NetworkPolicies change rarely and are matched on every admission, so the
    validation and parsing cost is paid when the cache stores them.
    """

    __slots__ = ("_labels", "_requirements", "selects_nothing")

    def __init__(self, selector: Mapping[str, Any] | None) -> None:
        """Validates as it compiles; raises InvalidSelector for a malformed selector."""
        self.selects_nothing = selector is None
        selector = selector or {}
        match_labels = selector.get("matchLabels") or {}
        if not isinstance(match_labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in match_labels.items()
        ):
            raise InvalidSelector("matchLabels must map strings to strings")
        expressions = selector.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise InvalidSelector("matchExpressions must be a list")
        self._labels = tuple(match_labels.items())
        self._requirements = tuple(_requirement(expr, i) for i, expr in enumerate(expressions))

    @property
    def first_label(self) -> tuple[str, str] | None:
        """A label every selected object carries (the first of matchLabels), if any."""
        return self._labels[0] if self._labels and not self.selects_nothing else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.selects_nothing:
            return False
        for key, value in self._labels:
            if labels.get(key) != value:
                return False
        for key, operator, values in self._requirements:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether the selector selects an object with these labels.

    Raises InvalidSelector for a malformed selector rather than guessing:
    a guess could make a NetworkPolicy look like it covers a pod when the API
    server would not have stored it.
    """
    return Selector(selector).matches(labels)
