"""Test-only policies that misbehave on demand, switched by annotations so they
stay quiet on every other request."""

from __future__ import annotations

import time
from collections.abc import Iterator

from policies import PodView, Violation, policy


@policy("explode", title="Raises when asked to", category="test")
def explode(pod: PodView) -> Iterator[Violation]:
    if "test.podgate.dev/explode" in pod.annotations:
        raise RuntimeError("kaboom")
    yield from ()


@policy("explode-strict", title="Raises when asked to; fails closed", category="test")
def explode_strict(pod: PodView) -> Iterator[Violation]:
    if "test.podgate.dev/explode-strict" in pod.annotations:
        raise RuntimeError("kaboom, strictly")
    yield from ()


@policy("slow", title="Sleeps when asked to", category="test", concerns_ephemeral=False)
def slow(pod: PodView) -> Iterator[Violation]:
    seconds = pod.annotations.get("test.podgate.dev/sleep")
    if isinstance(seconds, str):
        time.sleep(float(seconds))
    yield from ()


@policy("spin", title="Never returns when asked to", category="test", concerns_ephemeral=False)
def spin(pod: PodView) -> Iterator[Violation]:
    if "test.podgate.dev/spin" in pod.annotations:
        while True:
            pass
    yield from ()
