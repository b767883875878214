"""Copies of JSON-shaped objects, for the mutations to change."""

from __future__ import annotations

import marshal
from collections.abc import Mapping
from typing import Any

import orjson


def deep_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data, in which nothing is shared (the
    aliases of loaded YAML come apart).

    orjson round-trips dicts, lists, strings and numbers in C, twice as fast
    as marshal. JSON cannot carry everything a parsed manifest may hold
    (NaN becomes null, a tuple a list), so the copy is kept only when it
    compares equal to the original, itself a C-level walk; otherwise
    marshal, and a Python recursion for what marshal cannot serialise.
    """
    try:
        copy = orjson.loads(orjson.dumps(value))
        if copy == value:
            return copy
    except orjson.JSONEncodeError:  # integers past 64 bits, non-string keys, ...
        pass
    try:
        return marshal.loads(marshal.dumps(value, 2))
    except ValueError:
        return _copy_recursively(value)


def _copy_recursively(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_recursively(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_recursively(v) for v in value]
    return value


def _copy_metadata(node: dict[str, Any]) -> None:
    metadata = node.get("metadata")
    if isinstance(metadata, dict):
        node["metadata"] = metadata = dict(metadata)
        for key in ("labels", "annotations"):
            if isinstance(metadata.get(key), dict):
                metadata[key] = dict(metadata[key])


def copy_for_mutation(obj: Mapping[str, Any], template_path: tuple[str, ...]) -> dict[str, Any]:
    """A copy in which mutations may change the pod spec, and the labels and
    annotations of the object and of its pod template; everything else
    (status, managedFields...) is shared, not copied.

    Sharing keeps the copy and the diff cheap: the diff skips shared subtrees
    by identity.
    """
    root = dict(obj)
    _copy_metadata(root)
    node = root
    for key in template_path:
        child = node.get(key)
        if not isinstance(child, dict):
            return dict(deep_copy(obj))
        node[key] = node = dict(child)
    if isinstance(node.get("spec"), dict):
        node["spec"] = deep_copy(node["spec"])
    if node is not root:
        _copy_metadata(node)
    return root
