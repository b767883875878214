"""RFC 6902 JSON Patch computed from an original object and a mutated copy.

Mutators change a copy; the patch is the difference. Computing it rather than
writing operations by hand makes every patch minimal (no operation for a value
that did not change) and idempotent (a second pass over the patched object
finds nothing to change, so the diff is empty).
"""

from __future__ import annotations

import marshal
from typing import Any

import orjson

Operation = dict[str, Any]


def escape(token: str) -> str:
    """A JSON Pointer reference token: `~` -> `~0`, `/` -> `~1` (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _strictly_equal(a: list[Any], b: list[Any]) -> bool:
    """Whether values already found `==` are also equal as JSON.

    Python says True == 1 == 1.0; JSON does not. orjson (in C) writes the
    types apart (`true`, `1`, `1.0`), so one call over all the equal siblings
    of a level settles it. Key order
    also shows in the output: when only the order differs, the caller
    recurses and finds nothing to change. Bytes that differ for values that
    are equal as JSON only cost that recursion; they never hide a change.
    """
    try:
        return orjson.dumps(a) == orjson.dumps(b)
    except orjson.JSONEncodeError:  # integers past 64 bits, non-string keys, ...
        pass
    try:
        # Version 2: newer versions encode object sharing and string interning,
        # so equal data built differently would compare unequal.
        return marshal.dumps(a, 2) == marshal.dumps(b, 2)
    except ValueError:  # not marshal-able (e.g. round-trip YAML nodes): check one by one
        return False


def diff(original: object, mutated: object, path: str = "") -> list[Operation]:
    """The operations that turn `original` into `mutated`.

    Mappings are compared key by key; lists of equal length element by
    element; anything else that differs is replaced whole. Lists are not
    spliced: mutators fill fields, they do not insert list items, and a
    replace of a changed list is what the API server applies unambiguously.

    This runs on every mutating admission, so unchanged subtrees are skipped
    by identity or by C-level `==` (confirmed strictly, once per level),
    and only changed paths are walked in Python.
    """
    if isinstance(original, dict) and isinstance(mutated, dict):
        ops: list[Operation] = [
            {"op": "remove", "path": f"{path}/{escape(str(key))}"}
            for key in original
            if key not in mutated
        ]
        equal: list[Any] = []
        for key, value in mutated.items():
            if key not in original:
                ops.append({"op": "add", "path": f"{path}/{escape(str(key))}", "value": value})
                continue
            old = original[key]
            if old is value:
                continue
            if old == value:
                equal.append(key)
            else:
                ops.extend(diff(old, value, f"{path}/{escape(str(key))}"))
        if equal and not _strictly_equal([original[k] for k in equal], [mutated[k] for k in equal]):
            for key in equal:
                ops.extend(_diff_one(original[key], mutated[key], f"{path}/{escape(str(key))}"))
        return ops
    if isinstance(original, list) and isinstance(mutated, list):
        if len(original) != len(mutated):
            return [{"op": "replace", "path": path, "value": mutated}]
        ops = []
        equal_at: list[int] = []
        for index, (old, value) in enumerate(zip(original, mutated, strict=True)):
            if old is value:
                continue
            if old == value:
                equal_at.append(index)
            else:
                ops.extend(diff(old, value, f"{path}/{index}"))
        if equal_at and not _strictly_equal(
            [original[i] for i in equal_at], [mutated[i] for i in equal_at]
        ):
            for index in equal_at:
                ops.extend(_diff_one(original[index], mutated[index], f"{path}/{index}"))
        return ops
    if type(original) is type(mutated) and original == mutated:
        return []
    return [{"op": "replace", "path": path, "value": mutated}]


def _diff_one(original: object, mutated: object, path: str) -> list[Operation]:
    """A pair found `==` but not strictly equal: a type change, or only key order."""
    if isinstance(original, dict | list) and type(original) is type(mutated):
        return diff(original, mutated, path)
    if type(original) is type(mutated):
        return []
    return [{"op": "replace", "path": path, "value": mutated}]


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(document: Any, operations: list[Operation]) -> Any:
    """Apply add/replace/remove operations in place; returns the (new) root.

    Used by `podgate check --fix` on round-trip YAML nodes, which keeps
    comments and key order around the changed fields.
    """
    for op in operations:
        path = op["path"]
        if path == "":
            if op["op"] == "remove":
                raise ValueError("cannot remove the whole document")
            document = op["value"]
            continue
        *parents, last = [unescape(t) for t in path.split("/")[1:]]
        node = document
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op["op"] == "add":
                node.insert(index, op["value"])
            elif op["op"] == "replace":
                node[index] = op["value"]
            else:
                del node[index]
        elif op["op"] == "remove":
            del node[last]
        else:
            node[last] = op["value"]
    return document
