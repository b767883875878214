"""`podgate check --fix`: the mutated manifests, keeping everything else as written.

Only documents with a patch are re-emitted; the others are copied verbatim,
and the patched ones go through ruamel's round-trip loader so their
comments, key order and quoting survive. Printed to stdout, every input
comes out, changed or not, as one YAML stream that `kubectl apply -f -`
reads as it would have read the inputs.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML

from policies.patch import apply_patch
from webhook.check import Checked
from webhook.manifests import is_separator, split_documents


def _patches(checked: Sequence[Checked], file: str) -> dict[int, list[dict[str, Any]]]:
    """The patch of each document of a file, List items' patches merged into theirs."""
    found: dict[int, list[dict[str, Any]]] = {}
    for c in checked:
        if c.document.file != file or c.decision is None or not c.decision.patch:
            continue
        prefix = f"/items/{c.document.item}" if c.document.item is not None else ""
        ops = [{**op, "path": prefix + op["path"]} for op in c.decision.patch]
        found.setdefault(c.document.index, []).extend(ops)
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


def fixed_text(text: str, checked: Sequence[Checked], file: str) -> str:
    """The file's text with every patch applied; unchanged documents verbatim."""
    patches = _patches(checked, file)
    if not patches:
        return text
    if "\r\n" in text:
        # ruamel reads a CRLF file's comments with their `\r` and writes its
        # own lines with `\n`: fixed on LF text, the file keeps its CRLF.
        return fixed_text(text.replace("\r\n", "\n"), checked, file).replace("\n", "\r\n")
    if text.lstrip().startswith(("{", "[")):
        try:
            value = json.loads(text)
        except ValueError:
            pass
        else:
            return json.dumps(apply_patch(value, patches[0]), indent=2) + "\n"
    yaml = _round_trip(text)
    out: list[str] = []
    for chunk in split_documents(text):
        ops = patches.get(chunk.index)
        body = chunk.text
        if ops:
            node = yaml.load(chunk.text)
            node = apply_patch(node, ops)
            buffer = io.StringIO()
            yaml.dump(node, buffer)
            body = _keep_leading_comments(chunk.text, buffer.getvalue())
        out.append(chunk.separator + body)
    return "".join(out)


def _keep_leading_comments(original: str, dumped: str) -> str:
    """ruamel keeps comments inside a document; the lines before its first key are
    re-added here when the dump dropped them."""
    head: list[str] = []
    for line in original.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        head.append(line)
    prefix = "".join(head)
    return dumped if dumped.startswith(prefix) else prefix + dumped


def fixed_texts(texts: Mapping[str, str], checked: Sequence[Checked]) -> dict[str, str]:
    """Every input's text, fixed where a patch applies (the others as they are)."""
    return {file: fixed_text(text, checked, file) for file, text in texts.items()}


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
