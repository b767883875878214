"""podgate reads YAML as kubectl does (go-yaml v2, then JSON): where PyYAML's
YAML 1.1 resolvers agree with kubectl the two give the same values, and
each place where they differ has its own case below, with what kubectl
reads."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies import yaml_reading
from policies.yaml_reading import load_yaml
from webhook.cli.manifests import split_documents


class Reference(yaml.SafeLoader):
    """PyYAML's own safe loader, untouched but for the timestamp resolver."""


Reference.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

AGREED = [
    "a: 1\nb: [1, 2.5, true, null, ~, 'x', yes, off, 0x1F, 1_000, -0.5e-3, 010, 0b11]\n",
    "base: &b {x: 1, z: [1, 2]}\nother: *b\nmerged: {<<: *b, w: 3}\n",
    "list: [&a {k: v}, *a]\n",
    "!!str 123",
    "",
    "# only a comment\n",
    "q: '1'\nr: \"true\"\ns: |\n  multi\n  line\n",
    "nested: {a: {b: {c: [1, {d: e}]}}}\n",
    "k: [~, null, Null, '', NaN, +1, -0x1F, 1.5e-3, 1.5, .5, 1_000.5, 'y']\n",
    "empty:\nquoted: ''\nbools: [True, FALSE, On, no]\n",
]


@pytest.mark.parametrize("text", AGREED)
def test_same_as_pyyaml_where_kubectl_agrees(text: str) -> None:
    assert load_yaml(text) == yaml.load(text, Loader=Reference)


# Each place where kubectl's reading (go-yaml v2 through sigs.k8s.io/yaml,
# then JSON) differs from PyYAML's: the text, PyYAML's value, kubectl's.
DIFFERENCES: dict[str, tuple[str, Any, Any]] = {
    "unquoted = is a string, not YAML 1.1's value key": ("k: =", "error", "="),
    "y and n are booleans": ("k: [y, Y, n, N]", ["y", "Y", "n", "N"], [True, True, False, False]),
    "0o is an octal prefix": ("k: 0o17", "0o17", 15),
    "uppercase base prefixes": ("k: [0X1F, 0B11, 0O17]", ["0X1F", "0B11", "0O17"], [31, 3, 15]),
    "08 is the number 8 (Go reads it as a float)": ("k: 08", "08", 8),
    "no sexagesimal integers": ("k: 190:20:30", 685230, "190:20:30"),
    "no sexagesimal floats": ("k: 1:30.5", 90.5, "1:30.5"),
    "an exponent without a dot or sign": ("k: 1e3", "1e3", 1000),
    "an exponent after a dot, without a sign": ("k: .5e3", ".5e3", 500),
    "a signed number starting with a dot": ("k: -.5", "-.5", -0.5),
    "an integral float is an integer after JSON": ("k: 1000.0", 1000.0, 1000),
    "a number past 64 bits is a float after JSON": (
        "k: 99999999999999999999",
        99999999999999999999,
        1e20,
    ),
    "NaN cannot be JSON: refused": ("k: .nan", math.nan, "error"),
    "infinity cannot be JSON: refused": ("k: -.inf", -math.inf, "error"),
    "timestamps stay strings": ("k: 2024-01-01", "date", "2024-01-01"),
    "an explicit !!timestamp stays a string": ("k: !!timestamp 2024-01-01", "date", "2024-01-01"),
    "a local tag keeps the text": ("k: !custom 1", "error", "1"),
    "!!binary is decoded to text": ("k: !!binary aGVsbG8=", b"hello", "hello"),
    "!!set is a mapping of nulls": ("k: !!set {a, b}", {"a", "b"}, {"a": None, "b": None}),
    "<< as a value is a string": ("k: <<", "error", "<<"),
    "integer keys are strings": ("1: a", {1: "a"}, {"1": "a"}),
    "boolean keys are strings": (
        "yes: a\nn: b",
        {True: "a", "n": "b"},
        {"true": "a", "false": "b"},
    ),
    "float keys are printed as Go prints a float32": (
        "1e6: a\n1.5: b",
        {"1e6": "a", 1.5: "b"},
        {"1e+06": "a", "1.5": "b"},
    ),
    "a null key is refused": ("~: a", {None: "a"}, "error"),
    "an explicit tag the text does not fit is refused": ("k: !!int 1.5", "error", "error"),
}


def _read(load: Any, text: str) -> Any:
    """The value of `k` (or the whole document when it has no `k`), or "error"."""
    try:
        value = load(text)
    except (yaml.YAMLError, ValueError):
        return "error"
    return value["k"] if isinstance(value, dict) and set(value) == {"k"} else value


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type (True == 1 == 1.0 in Python), NaN included."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", DIFFERENCES)
def test_where_pyyaml_and_kubectl_differ_podgate_reads_as_kubectl(name: str) -> None:
    text, by_pyyaml, by_kubectl = DIFFERENCES[name]
    assert _same(_read(load_yaml, text), by_kubectl)
    pyyaml = _read(yaml.safe_load, text)
    if by_pyyaml == "date":
        assert type(pyyaml).__name__ == "date"
    else:
        assert _same(pyyaml, by_pyyaml), f"PyYAML reads {pyyaml!r}"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("? [a, b]\n: 1\n", "found unhashable key"),
        ("a: &a [*a]\n", "recursive alias"),
        # kubectl refuses a key given twice (`key "name" already set in map`)
        ("metadata:\n  name: a\n  name: b\n", "found duplicate key 'name'"),
        ("base: &b {x: 1}\nm: {x: 1, x: 2}\n", "found duplicate key 'x'"),  # the anchor path
        ("a: 1\n'1': 2\n1: 3\n", "found duplicate key '1'"),  # the same once a string
        ("m: {<<: [a]}\n", "expected a mapping or list of mappings for merging"),
    ],
)
def test_errors(text: str, error: str) -> None:
    with pytest.raises(yaml.YAMLError, match=error):
        load_yaml(text)


def test_a_merge_key_may_still_be_overridden() -> None:
    assert load_yaml("base: &b {a: 1, b: 2}\nm: {<<: *b, a: 3}\n")["m"] == {"a": 3, "b": 2}
    merged = load_yaml("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nm: {<<: [*a, *b]}\n")["m"]
    assert merged == {"k": 1, "j": 2}, "the first mapping listed wins"


def test_both_builders_read_every_example_and_fixture_alike() -> None:
    """The plain-tree builder (no anchors) and the general one agree."""
    root = Path(__file__).parents[2]
    files = [*root.glob("examples/**/*.yaml"), *root.glob("tests/policies/**/*.yaml")]
    assert len(files) > 50
    for file in files:
        for chunk in split_documents(file.read_text()):
            loader = yaml_reading._Loader(chunk.text)
            node = loader.get_single_node()
            loader.dispose()
            if node is None:
                continue
            tree = yaml_reading._construct_tree(node)
            assert tree == yaml_reading._construct_document(node), f"{file}: {chunk.index}"


def test_remembered_scalar_tags_stay_bounded_and_right() -> None:
    # more distinct plain scalars than the resolver remembers, each read twice
    values = [f"v{i}" if i % 3 else str(i) for i in range(yaml_reading._PLAIN_TAGS_MAX + 500)]
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    for _ in range(2):
        assert load_yaml(text) == yaml.load(text, Loader=Reference)
        assert len(yaml_reading._PLAIN_TAGS) <= yaml_reading._PLAIN_TAGS_MAX
