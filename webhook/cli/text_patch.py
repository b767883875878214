"""A JSON Patch applied to a YAML document as edits of its text.

`--fix --write` must leave everything it does not change byte for byte as
it was: a diff of the file shows the fix and nothing else. Dumping the
whole document again (ruamel's round trip) re-indents block lists that
were written in another style than the first one it sees. Here each
operation is an insertion or a replacement at the place the document's
own nodes give, rendered in the indentation around it; whatever cannot be
done that way (a removal, a key inside a flow list) returns None, and the
caller falls back to the round trip.
"""

from __future__ import annotations

import io
from typing import Any

import yaml
from ruamel.yaml import YAML

from policies.yaml_reading import compose_yaml


class _Unsupported(Exception):
    """An operation this module does not edit in text."""


def patched_text(text: str, ops: list[dict[str, Any]], sequence_offset: int = 0) -> str | None:
    """The document with every operation applied, or None if one cannot be."""
    try:
        for op in ops:
            text = _apply(text, op, sequence_offset)
    except (_Unsupported, yaml.YAMLError):
        return None
    return text


def _tokens(path: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def _find(node: yaml.Node, tokens: list[str]) -> yaml.Node:
    for token in tokens:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == token), None) or _missing()
        elif isinstance(node, yaml.SequenceNode) and token.isdigit():
            if int(token) >= len(node.value):
                raise _Unsupported(token)
            node = node.value[int(token)]
        else:
            raise _Unsupported(token)
    return node


def _missing() -> yaml.Node:
    raise _Unsupported("no such node")


def _apply(text: str, op: dict[str, Any], sequence_offset: int) -> str:
    root = compose_yaml(text)
    if root is None:
        raise _Unsupported("empty document")
    tokens = _tokens(op["path"])
    if not tokens:
        raise _Unsupported("the whole document")
    parent = _find(root, tokens[:-1])
    last = tokens[-1]
    if op["op"] == "add" and isinstance(parent, yaml.MappingNode):
        if any(k.value == last for k, _ in parent.value):
            return _replace(text, _find(parent, [last]), op["value"], sequence_offset)
        return _add_key(text, parent, last, op["value"], sequence_offset)
    if op["op"] == "add" and isinstance(parent, yaml.SequenceNode):
        if last != "-" and (not last.isdigit() or int(last) != len(parent.value)):
            raise _Unsupported("an insertion before the end of a list")
        return _append_item(text, parent, op["value"], sequence_offset)
    if op["op"] == "replace":
        return _replace(text, _find(parent, [last]), op["value"], sequence_offset)
    raise _Unsupported(op["op"])


def _flow(value: object) -> str:
    """A value on one line, as YAML flow style writes it."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def _block(value: object, indent: int, sequence_offset: int) -> str:
    """A mapping or list in block style, every line indented by `indent`."""
    dumper = YAML(typ="rt")  # keys in the order the patch gives them
    dumper.default_flow_style = False
    dumper.width = 10**6
    dumper.indent(mapping=2, sequence=sequence_offset + 2, offset=sequence_offset)
    buffer = io.StringIO()
    dumper.dump(value, buffer)
    pad = " " * indent
    return "".join(
        pad + line if line.strip() else line for line in buffer.getvalue().splitlines(True)
    )


def _line_after(text: str, mark: yaml.Mark) -> int:
    """Where the line after the one a node ends on starts (its end, for a
    node that ends at the start of a line: a block scalar, a nested block)."""
    position = mark.index
    if position > 0 and text[position - 1] == "\n":
        return position
    newline = text.find("\n", position)
    return len(text) if newline < 0 else newline + 1


def _last_end(node: yaml.Node) -> yaml.Mark:
    """The end of the last thing written in a node: where what follows it goes."""
    if not isinstance(node, yaml.CollectionNode) or node.flow_style or not node.value:
        return node.end_mark
    last = node.value[-1]
    return _last_end(last[1] if isinstance(node, yaml.MappingNode) else last)


def _insert_lines(text: str, at: int, lines: str) -> str:
    if at == len(text) and text and not text.endswith("\n"):
        lines = "\n" + lines
    return text[:at] + lines + text[at:]


def _add_key(
    text: str, mapping: yaml.MappingNode, key: str, value: object, sequence_offset: int
) -> str:
    if mapping.flow_style or not mapping.value:
        return _into_flow(text, mapping, f"{_flow(key)}: {_flow(value)}", "}")
    indent = mapping.value[0][0].start_mark.column
    at = _line_after(text, _last_end(mapping))
    return _insert_lines(text, at, _block({key: value}, indent, sequence_offset))


def _append_item(
    text: str, sequence: yaml.SequenceNode, value: object, sequence_offset: int
) -> str:
    if sequence.flow_style or not sequence.value:
        return _into_flow(text, sequence, _flow(value), "]")
    dash = sequence.start_mark.column  # a block list starts at its first `-`
    at = _line_after(text, _last_end(sequence))
    item = _block([value], 0, 0)  # `- ...`, its lines indented from the dash
    return _insert_lines(text, at, "".join(" " * dash + line for line in item.splitlines(True)))


def _into_flow(text: str, node: yaml.CollectionNode, entry: str, closing: str) -> str:
    """`{a: 1}` -> `{a: 1, b: 2}`, `[]` -> `[x]`."""
    end = node.end_mark.index - 1
    if not node.flow_style or text[end] != closing:
        raise _Unsupported("an empty block collection")
    before = end
    while before > node.start_mark.index + 1 and text[before - 1] in " \t\r\n":
        before -= 1
    separator = ", " if node.value else ""
    return text[:before] + separator + entry + text[before:]


def _replace(text: str, node: yaml.Node, value: object, sequence_offset: int) -> str:
    """A value written on its key's line is replaced on it (in flow style);
    a block one by the same value in block style, in its place."""
    start, end = node.start_mark.index, node.end_mark.index
    if isinstance(node, yaml.ScalarNode) and start == end:  # `key:` with nothing after it
        return text[:start] + " " + _flow(value) + text[end:]
    if not isinstance(node, yaml.CollectionNode) or node.flow_style:
        return text[:start] + _flow(value) + text[end:]
    if not isinstance(value, dict | list):
        raise _Unsupported("a block collection replaced by a scalar")
    column = node.start_mark.column
    at = _line_after(text, _last_end(node))
    block = _block(value, column, sequence_offset)
    return text[:start] + block[column:] + text[at:]
