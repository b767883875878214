"""docs/writing-policies.md cannot drift: every code block in it is a file
under examples/, preceded by `<!-- file: path -->` and byte-identical to it,
and every such file is one that a test runs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.plugins.conftest import REPO, Cli

GUIDE = REPO / "docs" / "writing-policies.md"
MARKER = re.compile(r"^<!-- file: (?P<path>\S+) -->$")
FENCE = re.compile(r"^```")

# Each file the guide shows, and the test that runs it: a new block needs both.
RUN_BY = {
    "examples/policies/disallow-latest-tag/disallow_latest_tag.py": "test_examples.py (suite)",
    "examples/policies/allowed-registries/allowed_registries.py": "test_examples.py (suite)",
    "examples/policies/allowed-registries/podgate-test.yaml": "test_examples.py",
    "examples/policies/default-env/default_env.py": "test_examples.py (suite, patch)",
    "examples/policies/default-env/podgate-test.yaml": "test_examples.py",
    "examples/policies/config.yaml": "test_examples.py (check, policies)",
    "examples/plugin-package/pyproject.toml": "test_plugin_package.py (pip install)",
    "examples/plugin-package/src/acme_policies/__init__.py": "test_plugin_package.py",
    "examples/plugin-package/Dockerfile": "test_deploy.py (hadolint, structure)",
    "examples/policies/values-plugins.yaml": "test_deploy.py (helm template, load)",
}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    path: str | None  # from the marker before it
    text: str


def blocks(markdown: str) -> list[Block]:
    found: list[Block] = []
    lines = markdown.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue
        start = index
        previous = lines[start - 1].strip() if start > 0 else ""
        marker = MARKER.match(previous)
        end = start + 1
        while end < len(lines) and lines[end].rstrip("\n") != "```":
            end += 1
        assert end < len(lines), f"line {start + 1}: code block never closed"
        found.append(
            Block(start + 1, marker["path"] if marker else None, "".join(lines[start + 1 : end]))
        )
        index = end + 1
    return found


GUIDE_BLOCKS = blocks(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_its_code_blocks() -> None:
    assert len(GUIDE_BLOCKS) == len(RUN_BY)


@pytest.mark.parametrize("block", GUIDE_BLOCKS, ids=lambda b: b.path or f"line {b.line}")
def test_every_block_is_a_file_that_a_test_runs(block: Block) -> None:
    assert block.path is not None, (
        f"{GUIDE.name}:{block.line}: a code block without `<!-- file: path -->` on the line "
        "before it; put the snippet in a file under examples/ that a test runs"
    )
    assert block.path in RUN_BY, f"{block.path}: which test runs it? add it to RUN_BY"
    file = REPO / block.path
    assert file.read_text(encoding="utf-8") == block.text, (
        f"{GUIDE.name}:{block.line}: the block differs from {block.path}; copy the file into "
        "the guide again"
    )


def test_markers_are_only_before_code_blocks() -> None:
    lines = GUIDE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if MARKER.match(line.strip()):
            assert number < len(lines), f"line {number}: marker at the end of the guide"
            assert lines[number].startswith("```"), f"line {number}: marker not before a block"


def test_relative_links_resolve() -> None:
    for target in re.findall(r"\]\((?!https?:|#)([^)#]+)", GUIDE.read_text(encoding="utf-8")):
        assert (GUIDE.parent / target).exists(), f"broken link: {target}"


def test_a_drifted_block_is_caught() -> None:
    # The check itself must be able to fail: a one-character change is found.
    path = "examples/policies/config.yaml"
    text = (REPO / path).read_text(encoding="utf-8")
    drifted = f"<!-- file: {path} -->\n```yaml\n{text.replace('prod-eu-1', 'prod-eu-2')}```\n"
    (block,) = blocks(drifted)
    assert block.path == path
    assert block.text != text
    assert blocks(f"<!-- file: {path} -->\n```yaml\n{text}```\n")[0].text == text


def test_the_readmes_refusal_is_what_podgate_check_prints(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("```\nexamples/manifests/shop-worker.yaml:") + 4
    shown = readme[start : readme.index("```", start)]
    monkeypatch.chdir(REPO)
    run = cli("check", "--no-color", "examples/manifests/shop-worker.yaml")
    assert run.out == shown
