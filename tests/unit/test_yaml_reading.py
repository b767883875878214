"""podgate's YAML reading (its own constructor and specialised resolver over
libyaml) gives exactly what PyYAML's pure-Python safe loader gives, minus
timestamps, which Kubernetes keeps as strings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policies import yaml_reading
from policies.yaml_reading import _Loader, load_yaml
from webhook.cli.manifests import split_documents


class Reference(yaml.SafeLoader):
    """PyYAML's own safe loader, untouched but for the timestamp resolver."""


Reference.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers

CASES = [
    "a: 1\nb: [1, 2.5, true, null, ~, 'x', yes, off, 0o17, 0x1F, 1_000, .inf, -0.5e3]\n",
    "base: &b {x: 1, y: [1, 2]}\nother: *b\nmerged: {<<: *b, z: 3}\n",
    "list: [&a {k: v}, *a]\n",
    "!!str 123",
    "x: !!binary aGVsbG8=\n",
    "d: 2024-01-01\nt: 2024-01-01T10:00:00Z\n",
    "",
    "# only a comment\n",
    "- !!set {a, b}\n",
    "q: '1'\nr: \"true\"\ns: |\n  multi\n  line\n",
    "nested: {a: {b: {c: [1, {d: e}]}}}\n",
    "k: [~, null, Null, '', NaN, .nan, -.inf, +1, 0b11, 1e3, 1.5e-3, 190:20:30]\n",
    "empty:\nquoted: ''\nbools: [True, FALSE, On, no, y, n]\n",
]


@pytest.mark.parametrize("text", CASES)
def test_same_as_the_safe_loader(text: str) -> None:
    assert load_yaml(text) == yaml.load(text, Loader=Reference)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("? [a, b]\n: 1\n", "found unhashable key"),
        ("k: !custom 1\n", "could not determine a constructor"),
        ("a: &a [*a]\n", "recursive alias"),
        ("k: =\n", "tag:yaml.org,2002:value"),  # YAML 1.1's value key: PyYAML refuses it too
        # kubectl refuses a key given twice (`key "name" already set in map`)
        ("metadata:\n  name: a\n  name: b\n", "found duplicate key 'name'"),
        ("base: &b {x: 1}\nm: {x: 1, x: 2}\n", "found duplicate key 'x'"),  # the anchor path
    ],
)
def test_errors(text: str, error: str) -> None:
    with pytest.raises(yaml.YAMLError, match=error):
        load_yaml(text)


def test_a_merge_key_may_still_be_overridden() -> None:
    assert load_yaml("base: &b {x: 1, y: 2}\nm: {<<: *b, x: 3}\n")["m"] == {"x": 3, "y": 2}


def test_every_example_and_fixture_reads_the_same() -> None:
    root = Path(__file__).parents[2]
    files = [*root.glob("examples/**/*.yaml"), *root.glob("tests/policies/**/*.yaml")]
    assert len(files) > 50
    for file in files:
        for chunk in split_documents(file.read_text()):
            expected = yaml.load(chunk.text, Loader=Reference)
            assert load_yaml(chunk.text) == expected, f"{file}: document {chunk.index}"


def test_remembered_scalar_tags_stay_bounded_and_right() -> None:
    # more distinct plain scalars than the resolver remembers, each read twice
    values = [f"v{i}" if i % 3 else str(i) for i in range(yaml_reading._PLAIN_TAGS_MAX + 500)]
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    for _ in range(2):
        assert load_yaml(text) == yaml.load(text, Loader=Reference)
        assert len(yaml_reading._PLAIN_TAGS) <= yaml_reading._PLAIN_TAGS_MAX
