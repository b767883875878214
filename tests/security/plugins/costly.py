"""A test-only policy whose CPU cost grows with the object: the stand-in for
any policy that one huge object pushes past its budget."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from policies import PodView, Violation, policy


@policy("costly", title="Hashes every env value, many times", category="test")
def costly(pod: PodView) -> Iterator[Violation]:
    for container in pod.containers():
        for var in container.raw.get("env") or ():
            value = str(var.get("value", "")).encode()
            for _ in range(20):
                value = hashlib.sha256(value).digest() + value[:4096]
    yield from ()
