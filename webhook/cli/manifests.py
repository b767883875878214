"""Reading manifests the way kubectl does: files, folders, stdin; YAML streams, JSON, Lists.

One bad document never hides the others: the stream is split into documents
on `---` lines first (as kubectl's YAML reader does), and each document is
parsed on its own, so an error names its file, document and line while the
documents around it are still read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from policies.workloads import unserved_kind
from policies.yaml_reading import load_yaml, place_yaml_problem


@dataclass(frozen=True, slots=True)
class Document:
    """One object read from an input, or why it could not be read."""

    file: str
    index: int  # 0-based position of the document in its file
    line: int  # 1-based line where the document starts
    obj: dict[str, Any] | None
    error: str | None = None
    item: int | None = None  # position inside a `kind: List`
    # a value without `kind` (a Helm values file, `{}`): no Kubernetes object at all
    kindless: bool = False

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
class Skipped:
    """A file or folder left out on purpose (no manifest, --ignore), and why."""

    path: str
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
        problem = f"the document is {shape}, not a Kubernetes object"
        yield Document(file, index, line, None, problem, kindless=True)
        return
    kind = value.get("kind")
    items = value.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for position, item in enumerate(items):
            unserved = isinstance(item, dict) and unserved_kind(
                str(item.get("kind")), str(item.get("apiVersion"))
            )
            if unserved:
                yield Document(file, index, line, None, unserved, item=position)
            elif isinstance(item, dict):
                yield Document(file, index, line, item, item=position)
            else:
                bad_item = f"items[{position}] of the {kind} is not a mapping"
                yield Document(file, index, line, None, bad_item, item=position)
        return
    not_an_object = _not_an_object(value)
    if not_an_object is not None:
        yield Document(file, index, line, None, not_an_object, kindless="kind" not in value)
        return
    unserved = unserved_kind(value["kind"], value["apiVersion"])
    if unserved is not None:
        yield Document(file, index, line, None, unserved)
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
