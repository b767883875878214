"""Reading manifests the way kubectl does: files, folders, stdin; YAML streams, JSON, Lists.

One bad document never hides the others: the stream is split into documents
on `---` lines first (as kubectl's YAML reader does), and each document is
parsed on its own, so an error names its file, document and line while the
documents around it are still read.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from policies.config import place_yaml_problem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


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
    is the same, several times faster. Aliases share their built value, and
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


@dataclass(frozen=True, slots=True)
class Document:
    """One object read from an input, or why it could not be read."""

    file: str
    index: int  # 0-based position of the document in its file
    line: int  # 1-based line where the document starts
    obj: dict[str, Any] | None
    error: str | None = None
    item: int | None = None  # position inside a `kind: List`

    @property
    def where(self) -> str:
        item = f", items[{self.item}]" if self.item is not None else ""
        return f"{self.file}: document {self.index + 1}{item} (line {self.line})"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An input that could not be read at all (exit code 2)."""

    file: str
    reason: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """One document's text in a YAML stream, with the separator line before it."""

    index: int
    line: int
    text: str
    separator: str  # the `---` line that preceded it ('' for the first)


_SEPARATOR = re.compile(r"^---(\s*(#.*)?)?$")


def is_separator(line: str) -> bool:
    """Whether the line (with or without its line break) separates YAML documents."""
    return line.startswith("---") and _SEPARATOR.match(line.rstrip("\r\n")) is not None


def split_documents(text: str) -> list[Chunk]:
    """Split a YAML stream on `---` lines, as k8s.io/apimachinery's YAMLReader does.

    A line starting with `---` followed by nothing but spaces or a comment
    separates documents; `--- foo` does not. What comes before a stream's
    first `---` is not a document of its own when it holds nothing but
    blank lines and comments: it is kept with that separator, so that a
    file starting with `---` has its first document counted first.
    """
    chunks: list[Chunk] = []
    current: list[str] = []
    start, separator = 1, ""
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.startswith("---") and is_separator(line):  # a call per line costs: test first
            if chunks or _has_content(current):
                chunks.append(Chunk(len(chunks), start, "".join(current), separator))
                separator = line
            else:  # only blank lines and comments so far: they lead the first document
                separator += "".join(current) + line
            current, start = [], number + 1
            continue
        current.append(line)
    chunks.append(Chunk(len(chunks), start, "".join(current), separator))
    return chunks


def _is_content(line: str) -> bool:
    """Not blank and not a comment: part of a document's YAML."""
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _has_content(lines: Sequence[str]) -> bool:
    return any(_is_content(line) for line in lines)


def _content_line(chunk: Chunk) -> int:
    """The line of the chunk's first key, past any blank lines and comments
    before it: where a reader looks for the document."""
    if chunk.text[:1] not in ("#", " ", "\t", "\n", "\r"):
        return chunk.line  # the common case, without splitting the document
    for offset, line in enumerate(chunk.text.splitlines()):
        if _is_content(line):
            return chunk.line + offset
    return chunk.line


def _yaml_error(exc: yaml.YAMLError, chunk: Chunk) -> str:
    """`invalid YAML at line 14, column 1: did not find expected ',' or ']' (while
    parsing a flow sequence started at line 13, column 17)`, lines counted in the file."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"invalid YAML{place_yaml_problem(exc, problem, chunk.line)}"


_SHAPES = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list"}


def _not_an_object(value: Mapping[str, Any]) -> str | None:
    """Why a mapping is not a Kubernetes object, naming the field; None if it is one."""
    for key in ("apiVersion", "kind"):
        field = value.get(key)
        if field is None:
            return f"not a Kubernetes object: {key} is missing"
        if not isinstance(field, str):
            shape = _SHAPES.get(type(field), f"a {type(field).__name__}")
            return f"not a Kubernetes object: {key} is {shape}, not a string"
    return None


def _expand(file: str, index: int, line: int, value: object) -> Iterator[Document]:
    """Yield the document, or each item of a `kind: List`."""
    if value is None:
        return  # an empty document (a trailing `---`, comments only)
    if not isinstance(value, dict):
        shape = _SHAPES.get(type(value), f"a {type(value).__name__}")
        yield Document(file, index, line, None, f"the document is {shape}, not a Kubernetes object")
        return
    kind = value.get("kind")
    items = value.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for position, item in enumerate(items):
            if isinstance(item, dict):
                yield Document(file, index, line, item, item=position)
            else:
                bad_item = f"items[{position}] of the {kind} is not a mapping"
                yield Document(file, index, line, None, bad_item, item=position)
        return
    not_an_object = _not_an_object(value)
    if not_an_object is not None:
        yield Document(file, index, line, None, not_an_object)
        return
    yield Document(file, index, line, value)


@dataclass(frozen=True)
class JsonValue:
    """One value of a JSON file: where it starts and ends in the text."""

    start: int
    end: int
    value: Any


_JSON = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace, as kubectl reads it


def _after_space(text: str, position: int) -> int:
    match = _SPACE.match(text, position)
    return match.end() if match else position


def json_stream(text: str) -> list[JsonValue] | None:
    """The values of a JSON file, one or several one after another (as kubectl
    reads `{...}\n{...}`); None when the text is not JSON (flow-style YAML
    looks like it, and falls through to the YAML reader)."""
    position = _after_space(text, 0)
    if not text.startswith(("{", "["), position):
        return None
    values: list[JsonValue] = []
    while position < len(text):
        try:
            value, end = _JSON.raw_decode(text, position)
        except ValueError:
            return None
        values.append(JsonValue(position, end, value))
        position = _after_space(text, end)
    return values


def parse_text(text: str, file: str) -> Iterator[Document]:
    """Every document of a YAML stream or of a JSON file (one value or several)."""
    values = json_stream(text)
    if values is not None:
        line, counted = 1, 0
        for index, found in enumerate(values):
            line += text.count("\n", counted, found.start)
            counted = found.start
            yield from _expand(file, index, line, found.value)
        return
    for chunk in split_documents(text):
        if not chunk.text.strip():
            continue
        try:
            value = load_yaml(chunk.text)
        except yaml.YAMLError as exc:
            yield Document(file, chunk.index, _content_line(chunk), None, _yaml_error(exc, chunk))
            continue
        yield from _expand(file, chunk.index, _content_line(chunk), value)


def decode(data: bytes, file: str) -> str | Unreadable:
    """Bytes to text, or why they are not a manifest (binary data, bad encoding)."""
    if b"\x00" in data[:8192]:
        return Unreadable(file, "binary data (NUL bytes), not a YAML or JSON manifest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Unreadable(file, f"not UTF-8 text (byte {exc.start}): binary data?")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix in MANIFEST_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return [path]


@dataclass
class Inputs:
    """What was read: the documents, the inputs that failed, and each file's text."""

    documents: list[Document]
    unreadable: list[Unreadable]
    texts: dict[str, str]


def read_inputs(paths: Sequence[str], stdin: BinaryIO | None = None) -> Inputs:
    """Every document of every input, and the inputs that could not be read."""
    documents: list[Document] = []
    unreadable: list[Unreadable] = []
    texts: dict[str, str] = {}
    for raw in paths:
        if raw == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            sources: list[tuple[str, bytes | Unreadable]] = [("<stdin>", stream.read())]
        else:
            path = Path(raw)
            if not path.exists():
                unreadable.append(Unreadable(raw, "no such file or folder"))
                continue
            sources = []
            for file in _files(path):
                try:
                    sources.append((str(file), file.read_bytes()))
                except OSError as exc:
                    sources.append((str(file), Unreadable(str(file), exc.strerror or str(exc))))
        for name, data in sources:
            text = data if isinstance(data, Unreadable) else decode(data, name)
            if isinstance(text, Unreadable):
                unreadable.append(text)
                continue
            texts[name] = text
            documents.extend(parse_text(text, name))
    return Inputs(documents, unreadable, texts)
