"""Image references that cost podgate time must not cost it its policy."""

from __future__ import annotations

import time

import pytest

from policies.images import MAX_REFERENCE_LENGTH, InvalidImage, parse_image


@pytest.mark.parametrize("shape", ["a.", "a/", "a-", "a"])
def test_a_huge_reference_is_refused_at_once(shape: str) -> None:
    # ~2.8 MB, what fits in one API request: parsed, it took seconds and put
    # require-image-digest over its budget, suspending it for every namespace
    reference = shape * (2_800_000 // len(shape)) + "!"
    start = time.perf_counter()
    with pytest.raises(InvalidImage, match="characters long") as caught:
        parse_image(reference)
    assert time.perf_counter() - start < 1.0  # refused unparsed, not after a second
    assert len(str(caught.value)) < 200  # the message does not carry the reference


def test_the_longest_valid_reference_still_parses() -> None:
    name = "registry.example.com/" + "a" * 200
    reference = f"{name}:{'t' * 128}@sha256:{'a1' * 32}"
    assert len(reference) <= MAX_REFERENCE_LENGTH
    assert parse_image(reference).pinned
