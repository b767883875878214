from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Server, default_cluster, start_server
from tests.webhook.fakes import FakeSink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for a module: synced fake cluster, fake event sink."""
    cache, _, _ = default_cluster()
    srv = start_server(tmp_path_factory.mktemp("server"), context=cache, sink=FakeSink())
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that change its config or certificates."""
    cache, _, _ = default_cluster()
    srv = start_server(tmp_path, context=cache, sink=FakeSink())
    yield srv
    srv.stop()
