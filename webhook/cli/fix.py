"""`podgate check --fix`: the mutated manifests, keeping everything else as written.

Only documents with a patch are re-emitted; the others are copied verbatim.
A patched one gets its operations as edits of its text (text_patch.py), so
that nothing else in it changes; where that cannot be done it goes through
ruamel's round-trip loader, which keeps comments, key order and quoting.
Printed to stdout, every input comes out, changed or not, as one YAML
stream that `kubectl apply -f -` reads as it would have read the inputs.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML

from policies.copies import deep_copy
from policies.patch import apply_patch
from policies.yaml_reading import load_yaml
from webhook.cli.check import Checked
from webhook.cli.manifests import (
    Document,
    JsonValue,
    is_separator,
    json_stream,
    split_documents,
)
from webhook.cli.text_patch import patched_text


def _patches(checked: Sequence[Checked], file: str) -> dict[int, list[dict[str, Any]]]:
    """The patch of each document of a file, List items' patches merged into theirs."""
    found: dict[int, list[dict[str, Any]]] = {}
    for c in checked:
        doc = c.source
        if not isinstance(doc, Document) or doc.file != file:
            continue
        if c.decision is None or not c.decision.patch:
            continue
        prefix = f"/items/{doc.item}" if doc.item is not None else ""
        ops = [{**op, "path": prefix + op["path"]} for op in c.decision.patch]
        found.setdefault(doc.index, []).extend(ops)
    return found


_KEY_LINE = re.compile(r"^(?P<indent> *)[^\s#-][^#]*:\s*(#.*)?$")
_DASH_LINE = re.compile(r"^(?P<indent> *)- ")


def _sequence_offset(text: str) -> int:
    """How far the user indents `- ` under its key (0 or 2 in practice)."""
    lines = text.splitlines()
    for above, below in itertools.pairwise(lines):
        key, dash = _KEY_LINE.match(above), _DASH_LINE.match(below)
        if key and dash:
            return max(0, len(dash["indent"]) - len(key["indent"]))
    return 0


def _round_trip(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    offset = _sequence_offset(text)
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    return yaml


def fixed_text(
    text: str, checked: Sequence[Checked], file: str, problems: list[str] | None = None
) -> str:
    """The file's text with every patch applied; unchanged documents verbatim.

    A document whose fix would not read back as its patched self (YAML
    anchors and merge keys share nodes: a default written into one would
    reach another container) is left as written, and said in `problems`.
    """
    patches = _patches(checked, file)
    if not patches:
        return text
    if "\r\n" in text:
        # ruamel reads a CRLF file's comments with their `\r` and writes its
        # own lines with `\n`: fixed on LF text, the file keeps its CRLF.
        lf = fixed_text(text.replace("\r\n", "\n"), checked, file, problems)
        return lf.replace("\n", "\r\n")
    values = json_stream(text)
    if values is not None:
        return _fixed_json(text, values, patches)
    out: list[str] = []
    for chunk in split_documents(text):
        ops = patches.get(chunk.index)
        fixed = _fixed_document(chunk.text, ops) if ops else chunk.text
        body = chunk.text if fixed is None else fixed
        if fixed is None and problems is not None:
            problems.append(
                f"{file}: document {chunk.index + 1}: its YAML anchors or merge keys "
                "share what the fix would change, which would reach other fields too; "
                "left as written (the webhook's patch does not have this problem)"
            )
        out.append(chunk.separator + body)
    return "".join(out)


def _fixed_document(text: str, ops: list[dict[str, Any]]) -> str | None:
    """One document with its patch: as edits of its text where they can be
    (nothing else changes), else through ruamel's round trip; None when
    neither reads back as the document with the patch applied."""
    # the document as the patch means it, its aliases unshared: a change that
    # reached a shared node shows as a difference
    expected = apply_patch(deep_copy(load_yaml(text)), copy.deepcopy(ops))
    edited = patched_text(text, ops, _sequence_offset(text))
    if edited is not None and load_yaml(edited) == expected:
        return edited
    yaml = _round_trip(text)  # each document with its own list indentation
    node = apply_patch(yaml.load(text), ops)
    buffer = io.StringIO()
    yaml.dump(node, buffer)
    dumped = _keep_leading_comments(text, buffer.getvalue())
    return dumped if load_yaml(dumped) == expected else None


def _fixed_json(text: str, values: list[JsonValue], patches: dict[int, list[Any]]) -> str:
    """A JSON file (one value or a stream) with its patches applied, keeping
    what lies between the values, its indentation and its non-ASCII text."""
    indent = _json_indent(text)
    out, position = [], 0
    for index, found in enumerate(values):
        ops = patches.get(index)
        out.append(text[position : found.start])
        if ops:
            patched = apply_patch(found.value, ops)
            out.append(json.dumps(patched, indent=indent, ensure_ascii=False))
        else:
            out.append(text[found.start : found.end])
        position = found.end
    out.append(text[position:])
    fixed = "".join(out)
    return fixed if fixed.endswith("\n") else fixed + "\n"


def _json_indent(text: str) -> str | None:
    """The indentation of a JSON file's first nested line (spaces or a tab);
    None when compact."""
    for line in text.splitlines()[1:]:
        if line.strip():
            return line[: len(line) - len(line.lstrip(" \t"))] or None
    return None


def _keep_leading_comments(original: str, dumped: str) -> str:
    """ruamel keeps comments inside a document; the lines before its first key are
    re-added here when the dump dropped them."""
    head: list[str] = []
    for line in original.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        head.append(line)
    prefix = "".join(head)
    if dumped.startswith(prefix):
        return dumped
    # ruamel may keep the comments but drop a blank line among them
    kept = "".join(line for line in dumped.splitlines(keepends=True) if line.strip())
    wanted = "".join(line for line in head if line.strip())
    return dumped if wanted and kept.startswith(wanted) else prefix + dumped.lstrip("\n")


def fixed_texts(
    texts: Mapping[str, str], checked: Sequence[Checked], problems: list[str] | None = None
) -> dict[str, str]:
    """Every input's text, fixed where a patch applies (the others as they are)."""
    by_file: dict[str, list[Checked]] = {}
    for c in checked:  # each file's own documents: not all of them for every file
        if isinstance(c.source, Document):
            by_file.setdefault(c.source.file, []).append(c)
    return {
        file: fixed_text(text, by_file.get(file, []), file, problems)
        for file, text in texts.items()
    }


def as_stream(parts: Sequence[str]) -> str:
    """The inputs' texts as one stream.

    One input comes out as it is (a JSON file stays JSON). Several are
    joined with `---` lines, so that no input's last document runs into
    the next one's first; an input left unchanged is in the stream all the
    same, since the stream stands for all of them.
    """
    if len(parts) == 1:
        return parts[0]
    out: list[str] = []
    for part in parts:
        end = part.find("\n")
        if out and not is_separator(part if end < 0 else part[:end]):
            out.append("---\n")
        out.append(part if part.endswith("\n") or not part else part + "\n")
    return "".join(out)
