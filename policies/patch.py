"""RFC 6902 JSON Patch computed from an original object and a mutated copy.

Mutators change a copy; the patch is the difference. Computing it rather than
writing operations by hand makes every patch minimal (no operation for a value
that did not change) and idempotent (a second pass over the patched object
finds nothing to change, so the diff is empty).
"""

from __future__ import annotations

from typing import Any

Operation = dict[str, Any]


def escape(token: str) -> str:
    """A JSON Pointer reference token: `~` -> `~0`, `/` -> `~1` (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _same(a: object, b: object) -> bool:
    # JSON distinguishes true from 1, Python does not.
    return type(a) is type(b) and a == b


def diff(original: object, mutated: object, path: str = "") -> list[Operation]:
    """The operations that turn `original` into `mutated`.

    Mappings are compared key by key; lists of equal length element by
    element; anything else that differs is replaced whole. Lists are not
    spliced: mutators fill fields, they do not insert list items, and a
    replace of a changed list is what the API server applies unambiguously.
    """
    if isinstance(original, dict) and isinstance(mutated, dict):
        ops: list[Operation] = []
        for key in original:
            if key not in mutated:
                ops.append({"op": "remove", "path": f"{path}/{escape(str(key))}"})
        for key, value in mutated.items():
            child = f"{path}/{escape(str(key))}"
            if key not in original:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                ops.extend(diff(original[key], value, child))
        return ops
    if isinstance(original, list) and isinstance(mutated, list):
        if len(original) == len(mutated):
            return [
                op
                for index, (a, b) in enumerate(zip(original, mutated, strict=True))
                for op in diff(a, b, f"{path}/{index}")
            ]
        return [{"op": "replace", "path": path, "value": mutated}]
    if _same(original, mutated):
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
