from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Server, default_cluster, sink, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for a module: a synced cluster double, an Event sink double."""
    srv = start_server(tmp_path_factory.mktemp("server"), cluster=default_cluster(), sink=sink())
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that change its config or certificates."""
    srv = start_server(tmp_path, cluster=default_cluster(), sink=sink())
    yield srv
    srv.stop()
