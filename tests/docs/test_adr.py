"""docs/adr: every record has its parts and is in the index; links land."""

from __future__ import annotations

from tests.docs.blocks import REPO, broken_links, headings

ADR = REPO / "docs" / "adr"


def _records() -> list[str]:
    return sorted(p.name for p in ADR.glob("[0-9][0-9][0-9][0-9]-*.md"))


def test_records_are_numbered_in_order_and_indexed() -> None:
    records = _records()
    assert len(records) >= 4
    numbers = [int(name[:4]) for name in records]
    assert len(set(numbers)) == len(numbers), "two records share a number"
    index = (ADR / "README.md").read_text(encoding="utf-8")
    for name in records:
        assert f"]({name})" in index, f"{name} is not in docs/adr/README.md"
    # numbers kept for records other issues write: listed as to come until they exist
    for number in range(1, max(numbers) + 1):
        assert f"{number:04d}" in index, f"{number:04d} is neither written nor announced"
    # existing workloads (0005) and failure semantics (0006) are written with their issues
    assert "| 0005 |" in index or "0005-" in index
    assert "| 0006 |" in index or "0006-" in index


def test_every_record_has_status_context_decision_consequences() -> None:
    for name in _records():
        text = (ADR / name).read_text(encoding="utf-8")
        title = headings(ADR / name)[0]
        assert title.startswith(f"{name[:4]}. "), name
        assert "**Status:**" in text, name
        assert headings(ADR / name)[1:4] == ["Context", "Decision", "Consequences"], name


def test_links_land() -> None:
    for path in [ADR / "README.md", *(ADR / n for n in _records())]:
        assert broken_links(path) == [], path.name
