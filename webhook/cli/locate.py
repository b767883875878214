"""Where a field is in a manifest file: the line and column that SARIF and
GitHub annotations point at, rather than the document's first line.

A violation names its field as a path (`spec.template.spec.containers[0]
.livenessProbe`). The document's YAML is composed again (only for the
formats that need it, only for documents with findings) and the path is
followed through its nodes. A field that is missing (a probe not written)
points at the deepest part that is there: the key that would hold it, or
the container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from policies.yaml_reading import compose_yaml
from webhook.cli.manifests import Document, json_stream, split_documents

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Place:
    line: int  # 1-based, in the file
    column: int  # 1-based


def path_parts(field: str) -> list[str | int]:
    """`spec.containers[0].image` -> ['spec', 'containers', 0, 'image']."""
    return [int(index) if index else key for key, index in _PART.findall(field)]


class Locator:
    """Finds fields in the files of one report; each document is composed once."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts
        self._documents: dict[str, list[tuple[int, str]]] = {}  # file -> (first line, text)
        self._nodes: dict[tuple[str, int], yaml.Node | None] = {}

    def _document(self, doc: Document) -> tuple[int, yaml.Node | None]:
        text = self._texts.get(doc.file)
        if text is None:
            return doc.line, None
        if doc.file not in self._documents:
            values = json_stream(text)
            if values is not None:
                self._documents[doc.file] = [
                    (text.count("\n", 0, v.start) + 1, text[v.start : v.end]) for v in values
                ]
            else:
                self._documents[doc.file] = [(c.line, c.text) for c in split_documents(text)]
        documents = self._documents[doc.file]
        if doc.index >= len(documents):
            return doc.line, None
        first, body = documents[doc.index]
        key = (doc.file, doc.index)
        if key not in self._nodes:
            try:
                self._nodes[key] = compose_yaml(body)
            except yaml.YAMLError:
                self._nodes[key] = None
        return first, self._nodes[key]

    def place(self, doc: Document, field: str | None) -> Place:
        """Where `field` is in the document (its first line when unknown)."""
        first, node = self._document(doc)
        if node is None:
            return Place(doc.line, 1)
        parts: list[str | int] = ["items", doc.item] if doc.item is not None else []
        parts += path_parts(field or "")
        mark = _follow(node, parts)
        if mark is None:
            return Place(doc.line, 1)
        return Place(first + mark.line, mark.column + 1)


def _follow(node: yaml.Node, parts: list[str | int]) -> yaml.Mark | None:
    """The mark of the last part found along the path: a key's, or an item's."""
    mark: yaml.Mark | None = node.start_mark
    position = 0
    while position < len(parts):
        part = parts[position]
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return mark
            node = node.value[part]
            mark = node.start_mark
            position += 1
            continue
        if not isinstance(node, yaml.MappingNode) or isinstance(part, int):
            return mark
        found = _key(node, parts, position)
        if found is None:
            return mark
        key_node, node, position = found
        mark = key_node.start_mark
    return mark


def _key(
    node: yaml.MappingNode, parts: list[str | int], position: int
) -> tuple[yaml.Node, yaml.Node, int] | None:
    """The key of `parts[position]` in a mapping, and where the path goes on.
    A key may hold dots (`app.kubernetes.io/name`): longer joins are tried too."""
    keys = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    end = position
    name = ""
    while end < len(parts) and isinstance(parts[end], str):
        name = f"{name}.{parts[end]}" if name else str(parts[end])
        end += 1
        if name in keys:
            key_node, value = keys[name]
            return key_node, value, end
    return None
