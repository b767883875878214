"""YAML read as Kubernetes reads it: safe, timestamps kept as strings, a key
given twice refused. The config and the manifests are read by `load_yaml`.

Manifests are read by the thousand in CI, so `load_yaml` builds values from
libyaml's nodes itself, faster than PyYAML's generic constructor, with
exactly its results (tests/unit/test_yaml_reading.py compares them).
"""

from __future__ import annotations

from typing import Any

import yaml


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml when available), minus timestamp parsing.

    Kubernetes reads `2024-01-01` as a string; PyYAML would make it a date,
    which is neither what the API server sees nor JSON-serialisable.
    """


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"


def _construct_document(loader: Any, node: yaml.Node) -> Any:
    """The document's value, built without PyYAML's generic constructor machinery.

    Strings, plain lists and plain mappings (nearly every node of a manifest)
    are built directly; anything else (numbers, booleans, null, merge keys,
    explicit tags) goes through the safe constructor as before, so the result
    is the same, faster. Aliases share their built value, and
    a recursive alias is refused as PyYAML refuses it.
    """
    built: dict[int, Any] = {}
    building: set[int] = set()

    def build(node: yaml.Node) -> Any:
        key = id(node)
        if key in built:
            return built[key]
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            value = node.value if tag == _STR else loader.construct_object(node, deep=True)
        elif isinstance(node, yaml.SequenceNode) and tag == _SEQ:
            if key in building:
                raise yaml.constructor.ConstructorError(
                    None, None, "found a recursive alias", node.start_mark
                )
            building.add(key)
            value = [build(child) for child in node.value]
            building.discard(key)
        elif (
            isinstance(node, yaml.MappingNode)
            and tag == _MAP
            and not any(k.tag == _MERGE for k, _ in node.value)
        ):
            if key in building:
                raise yaml.constructor.ConstructorError(
                    None, None, "found a recursive alias", node.start_mark
                )
            building.add(key)
            value = {}
            for key_node, value_node in node.value:
                mapping_key = build(key_node)
                try:
                    hash(mapping_key)
                except TypeError as exc:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found unhashable key",
                        key_node.start_mark,
                    ) from exc
                if mapping_key in value:
                    raise _duplicate_key(node, key_node, mapping_key)
                value[mapping_key] = build(value_node)
            building.discard(key)
        else:
            value = loader.construct_document(node)
        built[key] = value
        return value

    return build(node)


def _duplicate_key(node: yaml.Node, key_node: yaml.Node, key: object) -> yaml.YAMLError:
    """A key given twice in one mapping: kubectl refuses such a manifest
    (`key "x" already set in map`) rather than keep one of the two values."""
    return yaml.constructor.ConstructorError(
        "while constructing a mapping", node.start_mark,
        f"found duplicate key {key!r}", key_node.start_mark,
    )  # fmt: skip


_SCALARS: dict[str, Any] = {
    tag: yaml.SafeLoader.yaml_constructors[tag]
    for tag in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
    )
}


def _construct_tree(loader: Any, node: yaml.Node) -> Any:
    """`_construct_document` for a document without anchors or merge keys (the
    common case): a plain tree, so no bookkeeping of shared or recursive nodes."""
    tag = node.tag
    kind = type(node)
    if kind is yaml.ScalarNode:
        if tag == _STR:
            return node.value
        scalar = _SCALARS.get(tag)
        return scalar(loader, node) if scalar else loader.construct_object(node, deep=True)
    if kind is yaml.SequenceNode and tag == _SEQ:
        return [_construct_tree(loader, child) for child in node.value]
    if kind is yaml.MappingNode and tag == _MAP:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct_tree(loader, key_node)
            if type(key) is not str:
                try:
                    hash(key)
                except TypeError as exc:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        "found unhashable key", key_node.start_mark,
                    ) from exc  # fmt: skip
            if key in mapping:
                raise _duplicate_key(node, key_node, key)
            mapping[key] = _construct_tree(loader, value_node)
        return mapping
    return loader.construct_document(node)


# The resolver, specialised: the safe loader has no path resolvers, so the
# composer's per-node ascend/descend calls have nothing to do, and the
# implicit resolvers of each first character are joined once, not per scalar.
_RESOLVERS = _Loader.yaml_implicit_resolvers
_BY_FIRST_CHAR = {
    ch: tuple(found + _RESOLVERS.get(None, []))
    for ch, found in _RESOLVERS.items()
    if ch is not None
}
_WILDCARD = tuple(_RESOLVERS.get(None, []))

# The tag of a plain scalar depends on its text alone, and manifests repeat
# the same few hundred texts (every key, `TCP`, `IfNotPresent`, `100m`...):
# remembering them skips the regular expressions for nearly every scalar.
# Bounded: cleared when full, so a file of unique values cannot grow it.
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX = 4096


def _resolve(self: Any, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
    if kind is yaml.ScalarNode:
        if implicit[0]:
            tag = _PLAIN_TAGS.get(value)
            if tag is None:
                tag = _resolve_plain(value)
                if len(_PLAIN_TAGS) >= _PLAIN_TAGS_MAX:
                    _PLAIN_TAGS.clear()
                _PLAIN_TAGS[value] = tag
            return tag
        return _STR
    return _SEQ if kind is yaml.SequenceNode else _MAP


def _resolve_plain(value: str) -> str:
    for tag, regexp in _BY_FIRST_CHAR.get(value[:1], _WILDCARD):
        if regexp.match(value):
            return str(tag)
    return _STR


_Loader.resolve = _resolve
# The composer calls these two no-ops for every node. C callables cost less
# than a Python function there: `slice(parent, index)` builds a throwaway
# slice and `tuple()` returns the empty tuple, and both results are ignored.
_Loader.descend_resolver = staticmethod(slice)
_Loader.ascend_resolver = staticmethod(tuple)


def load_yaml(text: str) -> Any:
    """One YAML document, as Kubernetes would read it (see _Loader)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "&" not in text and "<<" not in text:  # no anchor, so no alias; no merge key
            return _construct_tree(loader, node)
        return _construct_document(loader, node)
    finally:
        loader.dispose()


def place_yaml_problem(exc: yaml.YAMLError, problem: str, first_line: int = 1) -> str:
    """` at line 3, column 7: <problem> (while constructing a mapping started
    at line 1, column 1)`: PyYAML's position on one line, without its excerpt
    of the text, lines counted from `first_line`; `: <problem>` when PyYAML
    gave no position."""

    def at(mark: object) -> str:
        line = first_line + getattr(mark, "line", 0)
        return f"line {line}, column {getattr(mark, 'column', 0) + 1}"

    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return f": {problem}"
    text = f" at {at(mark)}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        text += f" ({context} started at {at(context_mark)})"
    return text


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error in one line: where (if it says) and what."""
    problem = getattr(exc, "problem", None)
    if not problem or getattr(exc, "problem_mark", None) is None:
        return ": " + " ".join(str(exc).split())
    return place_yaml_problem(exc, problem)
