"""YAML read as kubectl reads it: go-yaml v2's scalars, keys as strings,
numbers as they come back from JSON, a key given twice refused. The config,
the manifests and the test suites are read by `load_yaml`.

Manifests are read by the thousand in CI, so `load_yaml` builds values from
libyaml's nodes itself, with podgate's resolver (policies/yaml_scalars.py)
in place of PyYAML's YAML 1.1 one.
"""

from __future__ import annotations

from typing import Any

import yaml

from policies.yaml_scalars import (
    MERGE,
    STR,
    ScalarError,
    construct,
    key_text,
    resolve_plain,
)

_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser and composer (PyYAML's when libyaml is missing); the
    values are built by `_Builder`, never by PyYAML's constructors."""


def _problem(message: str, node: yaml.Node, context: yaml.Node | None = None) -> yaml.YAMLError:
    return yaml.constructor.ConstructorError(
        "while constructing a mapping" if context is not None else None,
        context.start_mark if context is not None else None,
        message,
        node.start_mark,
    )


def _scalar(node: yaml.Node) -> Any:
    tag = node.tag
    if tag == STR:
        return node.value
    try:
        return construct(tag, node.value)
    except ScalarError as exc:
        raise _problem(str(exc), node) from exc


def _key(node: yaml.Node, mapping: yaml.Node) -> str:
    """A key as sigs.k8s.io/yaml writes it into JSON: always a string."""
    if type(node) is not yaml.ScalarNode:
        raise _problem("found unhashable key", node, mapping)
    tag = node.tag
    if tag == STR:
        return str(node.value)
    try:
        text = key_text(tag, node.value)
    except ScalarError as exc:
        raise _problem(str(exc), node, mapping) from exc
    if text is None:
        raise _problem("found a null key, which kubectl cannot read (JSON keys are strings)",
                       node, mapping)  # fmt: skip
    return text


def _duplicate_key(node: yaml.Node, key_node: yaml.Node, key: object) -> yaml.YAMLError:
    """A key given twice in one mapping: kubectl refuses such a manifest
    (`key "x" already set in map`) rather than keep one of the two values."""
    return _problem(f"found duplicate key {key!r}", key_node, node)


def _construct_tree(node: yaml.Node) -> Any:
    """A document without anchors or merge keys (the common case): a plain
    tree, so no bookkeeping of shared or recursive nodes. Tags on
    collections are ignored, as go-yaml ignores them (`!!set {a}` is a map)."""
    kind = type(node)
    if kind is yaml.ScalarNode:
        return node.value if node.tag == STR else _scalar(node)
    if kind is yaml.SequenceNode:
        return [_construct_tree(child) for child in node.value]
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == STR and type(key_node) is yaml.ScalarNode:
            key = key_node.value
        else:
            key = _key(key_node, node)
        if key in mapping:
            raise _duplicate_key(node, key_node, key)
        mapping[key] = _construct_tree(value_node)
    return mapping


def _construct_document(node: yaml.Node) -> Any:
    """The document's value where anchors, aliases or merge keys may be:
    an alias shares its anchor's value, a recursive alias is refused, and
    `<<` merges mappings as the YAML merge-key type says (a key of the
    mapping itself wins, and earlier merged mappings win over later ones)."""
    built: dict[int, Any] = {}
    building: set[int] = set()

    def build(node: yaml.Node) -> Any:
        key = id(node)
        if key in built:
            return built[key]
        value: Any
        if type(node) is yaml.ScalarNode:
            value = _scalar(node)
            built[key] = value
            return value
        if key in building:
            raise _problem("found a recursive alias", node)
        building.add(key)
        if type(node) is yaml.SequenceNode:
            value = [build(child) for child in node.value]
        else:
            value = mapping(node)
        building.discard(key)
        built[key] = value
        return value

    def mapping(node: yaml.Node) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                sources = (
                    value_node.value if type(value_node) is yaml.SequenceNode else [value_node]
                )
                for source in reversed(sources):  # the first one listed wins
                    if type(source) is not yaml.MappingNode:
                        raise _problem("expected a mapping or list of mappings for merging",
                                       source, node)  # fmt: skip
                    merged.update(build(source))
                continue
            name = _key(key_node, node)
            if name in own:
                raise _duplicate_key(node, key_node, name)
            own[name] = build(value_node)
        if not merged:
            return own
        merged.update(own)
        return merged

    return build(node)


# The tag of a plain scalar depends on its text alone, and manifests repeat
# the same few hundred texts (every key, `TCP`, `IfNotPresent`, `100m`...):
# remembering them skips the resolver for nearly every scalar.
# Bounded: cleared when full, so a file of unique values cannot grow it.
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX = 4096


def _resolve(self: Any, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
    if kind is yaml.ScalarNode:
        if implicit[0]:
            tag = _PLAIN_TAGS.get(value)
            if tag is None:
                tag = resolve_plain(value)
                if len(_PLAIN_TAGS) >= _PLAIN_TAGS_MAX:
                    _PLAIN_TAGS.clear()
                _PLAIN_TAGS[value] = tag
            return tag
        return STR
    return _SEQ if kind is yaml.SequenceNode else _MAP


_Loader.resolve = _resolve
# The composer calls these two no-ops for every node. C callables cost less
# than a Python function there: `slice(parent, index)` builds a throwaway
# slice and `tuple()` returns the empty tuple, and both results are ignored.
_Loader.descend_resolver = staticmethod(slice)
_Loader.ascend_resolver = staticmethod(tuple)


def load_yaml(text: str) -> Any:
    """One YAML document, as kubectl would read it (see the module's doc)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "&" not in text and "<<" not in text:  # no anchor, so no alias; no merge key
            return _construct_tree(node)
        return _construct_document(node)
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


def compose_yaml(text: str) -> yaml.Node | None:
    """One document's node tree, with the line and column of every node: where
    a finding is in the file (values are built by `load_yaml`)."""
    loader = _Loader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()
