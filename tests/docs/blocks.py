"""The fenced blocks of a Markdown page, with the marker comment right above each.

A marker is an HTML comment on the line before the fence (invisible once
rendered): `<!-- e2e: ID -->` (e2e/test_runbook.py runs the block as scenario
ID), `<!-- node: ID -->` (e2e/node/test_5_runbook_on_node.py runs it against
podgate's pods on the node), `<!-- needs: WHAT -->` (it needs what the e2e
suite does not have),
`<!-- rule: NAME -->` (a PromQL block that is the chart's rule NAME).
Blocks may be indented (inside a list item); their text is dedented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPERATIONS_DOCS = (REPO / "docs" / "runbook.md", REPO / "docs" / "troubleshooting.md")
SHELL = frozenset({"sh", "bash", "shell", "console"})

_MARKER = re.compile(r"^\s*<!--\s*(e2e|node|needs|rule):\s*(.+?)\s*-->\s*$")
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"\]\(([^)\s]*)\)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str | None = None  # e2e, node, needs, rule
    label: str | None = None  # the scenario id, what it needs, the rule name

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, lang = fence.group(1), fence.group(2)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(rf"^{indent}```\s*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        assert i < len(lines), f"{path}:{start + 1}: unclosed code block"
        i += 1
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = _MARKER.match(lines[previous]) if previous >= 0 else None
        found.append(
            Block(
                path,
                start + 1,
                lang,
                "\n".join(body) + "\n",
                marker.group(1) if marker else None,
                marker.group(2) if marker else None,
            )
        )
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _heading_lines(path: Path) -> list[tuple[int, str] | None]:
    """Per line: (level, text) of a heading outside code blocks, else None."""
    out: list[tuple[int, str] | None] = []
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        out.append((len(match.group(1)), match.group(2)) if match else None)
    return out


def headings(path: Path) -> list[str]:
    """The headings' texts, outside code blocks."""
    return [h[1] for h in _heading_lines(path) if h is not None]


def section(path: Path, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    lines = path.read_text(encoding="utf-8").splitlines()
    marks = _heading_lines(path)
    for number, mark in enumerate(marks):
        if mark is None or mark[1] != heading:
            continue
        end = number + 1
        while end < len(lines):
            nxt = marks[end]
            if nxt is not None and nxt[0] <= mark[0]:
                break
            end += 1
        return "\n".join(lines[number + 1 : end])
    raise AssertionError(f"{path.name} has no heading {heading!r}")


def broken_links(path: Path) -> list[str]:
    """Relative links of a page to a missing file, or to a heading its page lacks."""
    broken: list[str] = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        page, _, fragment = target.partition("#")
        linked = (path.parent / page).resolve() if page else path
        if not linked.exists() or (
            fragment and linked.suffix == ".md" and fragment not in map(slug, headings(linked))
        ):
            broken.append(target)
    return broken
