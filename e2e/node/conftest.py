"""The node suite: podgate's own image and chart on a real kubelet.

`e2e/run.sh` starts the node and builds the image after the host-process
suite, then runs this folder with PODGATE_E2E_NODE=1, which turns a missing
node into a failure instead of a skip. The tests run in file order: install,
admission, reports, availability, audit failover, uninstall (the order in
which a user meets them); each also works alone, installing what it needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.conftest import helm, kubectl
from e2e.node.release import (
    NAMESPACE,
    RELEASE,
    RESTRICTED,
    NodeImages,
    NodeRelease,
    create_namespace,
    node_images,
)

FIGURES: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def figures() -> list[dict[str, Any]]:
    """What a scenario measured; printed at the end of the run, as JSON lines."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("figures measured on the node")
        for figure in FIGURES:
            terminalreporter.write_line(json.dumps(figure, sort_keys=True))


@pytest.fixture(scope="session")
def images() -> NodeImages:
    found = node_images()
    if found is None:
        message = "no node: run `e2e/cluster.sh node` and `e2e/cluster.sh image` (or e2e/run.sh)"
        if os.environ.get("PODGATE_E2E_NODE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def release(images: NodeImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRelease]:
    """The chart's defaults plus the image, installed once for the session."""
    create_namespace(NAMESPACE, RESTRICTED)
    installed = NodeRelease(images, tmp_path_factory.mktemp("release"))
    installed.install()
    try:
        yield installed
    finally:
        if installed.installed():
            print(f"\n--- {RELEASE} at the end of the session ---\n{installed.describe()}")
            helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "120s")


def pytest_sessionfinish(session: pytest.Session) -> None:
    # The namespace outlives the release on purpose (PSA labels, kept Secrets
    # checked by the uninstall test); the session removes it.
    if node_images() is not None:
        kubectl("delete", "namespace", NAMESPACE, "--wait=false")
