"""What `podgate check` reads: files, folders and stdin, minus what is no manifest.

The rule (docs/adr/0008-check-in-ci.md says why): a YAML or JSON file none
of whose documents has a `kind` (a Helm `values.yaml`, a `Chart.yaml`,
`{}`) is no Kubernetes manifest. Found while walking a folder, it is
skipped, and so is a Helm chart's folder (the one holding `Chart.yaml`),
whose templates are no manifests until rendered; both are counted in the
summary and listed by `-v`. Named on the command line (or piped in), it is
an input error (exit 2): the user meant it to be checked. `--ignore GLOB`
leaves out what matches, by name or by path.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from webhook.cli.manifests import Document, Skipped, Unreadable, decode, parse_text

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
STDIN_NAME = "<stdin>"
CHART_FILE = "Chart.yaml"
NOT_A_MANIFEST = "not a Kubernetes manifest: none of its documents has a kind"


@dataclass
class Inputs:
    """What was read: the documents, the inputs that failed, each file's text,
    and what was left out on purpose."""

    documents: list[Document]
    unreadable: list[Unreadable]
    texts: dict[str, str]
    skipped: list[Skipped] = field(default_factory=list)


def _ignored(path: Path, root: Path, globs: Sequence[str]) -> str | None:
    """The first --ignore glob matching the path's name, its path under the
    folder it was found in, or the path as given; None when none does."""
    if not globs:
        return None
    relative = path.relative_to(root).as_posix() if path != root else path.name
    for glob in globs:
        if any(fnmatch.fnmatchcase(c, glob) for c in (path.name, relative, path.as_posix())):
            return glob
    return None


def _chart(folder: Path) -> Skipped:
    return Skipped(
        str(folder),
        "a Helm chart's source: its templates are no manifests until rendered; "
        f"check what it renders: helm template {folder} | podgate check -",
    )


def _walk(root: Path, ignore: Sequence[str]) -> tuple[list[Path], list[Skipped]]:
    """The manifest files under a folder, in path order, and what was left out."""
    if (root / CHART_FILE).is_file():
        return [], [_chart(root)]
    found: list[Path] = []
    skipped: list[Skipped] = []
    for top, folders, files in os.walk(root):
        here = Path(top)
        kept = []
        for name in sorted(folders):
            folder = here / name
            glob = _ignored(folder, root, ignore)
            if name.startswith("."):
                continue
            if glob is not None:
                skipped.append(Skipped(str(folder), f"--ignore {glob}"))
            elif (folder / CHART_FILE).is_file():
                skipped.append(_chart(folder))
            else:
                kept.append(name)
        folders[:] = kept
        for name in files:
            file = here / name
            if name.startswith(".") or file.suffix not in MANIFEST_SUFFIXES:
                continue
            glob = _ignored(file, root, ignore)
            if glob is not None:
                skipped.append(Skipped(str(file), f"--ignore {glob}"))
            else:
                found.append(file)
    return sorted(found), skipped


def _is_kindless(documents: Iterable[Document]) -> bool:
    """Documents that hold no Kubernetes object at all (at least one of them)."""
    seen = False
    for doc in documents:
        if not doc.kindless:
            return False
        seen = True
    return seen


def read_inputs(
    paths: Sequence[str],
    stdin: BinaryIO | None = None,
    ignore: Sequence[str] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> Inputs:
    """Every document of every input, the inputs that could not be read, and
    what was skipped (see the module's doc for the rule)."""
    inputs = Inputs([], [], {})
    for raw in paths:
        sources: list[tuple[str, bytes | Unreadable, bool]] = []  # name, data, named by the user
        if raw == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            sources.append((STDIN_NAME, stream.read(), True))
        else:
            path = Path(raw)
            if not path.exists():
                inputs.unreadable.append(Unreadable(raw, "no such file or folder"))
                continue
            glob = _ignored(path, path, ignore)
            if glob is not None:
                inputs.skipped.append(Skipped(raw, f"--ignore {glob}"))
                continue
            files, skipped = _walk(path, ignore) if path.is_dir() else ([path], [])
            inputs.skipped.extend(skipped)
            for file in files:
                try:
                    sources.append((str(file), file.read_bytes(), file == path))
                except OSError as exc:
                    failure = Unreadable(str(file), exc.strerror or str(exc))
                    sources.append((str(file), failure, file == path))
        for position, (name, data, named) in enumerate(sources):
            if progress is not None:
                progress(position, len(sources), "reading files")
            text = data if isinstance(data, Unreadable) else decode(data, name)
            if isinstance(text, Unreadable):
                inputs.unreadable.append(text)
                continue
            documents = list(parse_text(text, name))
            if _is_kindless(documents):
                if named:  # the first document says what it is instead
                    first = documents[0]
                    detail = f" ({first.where.removeprefix(name + ': ')}: {first.error})"
                    inputs.unreadable.append(Unreadable(name, NOT_A_MANIFEST + detail))
                else:
                    inputs.skipped.append(Skipped(name, NOT_A_MANIFEST))
                continue
            inputs.texts[name] = text
            inputs.documents.extend(documents)
    return inputs
