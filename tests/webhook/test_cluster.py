"""The list+watch caches, driven through a fake at the kube-client seam."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from policies.model import ClusterState
from tests.webhook.fakes import FakeSource, namespace, network_policy, wait_for
from webhook.cluster.cache import ClusterCache
from webhook.cluster.informer import NAMESPACES, NETWORK_POLICIES, Gone


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sources() -> tuple[FakeSource, FakeSource]:
    return (
        FakeSource(NETWORK_POLICIES, [network_policy("shop", "web", {"app": "web"})]),
        FakeSource(NAMESPACES, [namespace("shop", team="a")]),
    )


@pytest.fixture
def cache(sources: tuple[FakeSource, FakeSource]) -> Iterator[ClusterCache]:
    c = ClusterCache(*sources, watch_timeout_s=1, backoff_initial_s=0.02, backoff_max_s=0.1)
    c.start()
    yield c
    c.stop()


def test_syncs_then_follows_the_watch(
    cache: ClusterCache, sources: tuple[FakeSource, FakeSource]
) -> None:
    netpols, nss = sources
    wait_for(lambda: cache.synced)
    assert cache.cluster_state is ClusterState.SYNCED
    assert [p.name for p in cache.network_policies("shop")] == ["web"]
    assert cache.namespace_labels("shop") == {"team": "a"}
    assert cache.namespace_labels("nowhere") is None
    netpols.push("ADDED", network_policy("shop", "api", None))
    wait_for(lambda: len(cache.network_policies("shop")) == 2)
    netpols.push("DELETED", network_policy("shop", "web", None))
    wait_for(lambda: [p.name for p in cache.network_policies("shop")] == ["api"])
    nss.push("MODIFIED", namespace("shop", team="b"))
    wait_for(lambda: cache.namespace_labels("shop") == {"team": "b"})
    nss.push("DELETED", namespace("shop"))
    wait_for(lambda: cache.namespace_labels("shop") is None)
    # the watch resumes from the last resourceVersion it saw, without relisting
    wait_for(lambda: len(netpols.watch_calls) >= 2)
    assert netpols.list_calls == 1
    assert netpols.watch_calls[-1] == str(netpols.rv)


def test_410_gone_relists(cache: ClusterCache, sources: tuple[FakeSource, FakeSource]) -> None:
    netpols, _ = sources
    wait_for(lambda: cache.synced)
    netpols.items.append(network_policy("shop", "missed", None))  # changed while expired
    netpols.expire()
    wait_for(lambda: netpols.list_calls == 2)
    wait_for(lambda: {p.name for p in cache.network_policies("shop")} == {"web", "missed"})
    netpols.fail_watches.append(Gone("too old"))  # a 410 on the watch request itself
    wait_for(lambda: netpols.list_calls >= 3, timeout=5)
    assert cache.cluster_state is ClusterState.SYNCED


def test_reconnects_with_backoff_after_failures(
    cache: ClusterCache, sources: tuple[FakeSource, FakeSource]
) -> None:
    netpols, _ = sources
    wait_for(lambda: cache.synced)
    informer = cache.informers[0]
    netpols.fail_watches.extend([ConnectionError("refused")] * 3)
    netpols.break_stream()
    wait_for(lambda: informer.failures >= 4)
    wait_for(lambda: informer.connected and informer.broken_since is None)
    netpols.push("ADDED", network_policy("shop", "after", None))
    wait_for(lambda: "after" in {p.name for p in cache.network_policies("shop")})


def _state(cache: ClusterCache) -> ClusterState:
    return cache.cluster_state  # a call, so mypy does not narrow across the asserts


def test_unsynced_until_first_list_and_when_broken_too_long() -> None:
    clock = Clock()
    netpols, nss = FakeSource(NETWORK_POLICIES), FakeSource(NAMESPACES)
    netpols.fail_lists = 1000
    cache = ClusterCache(netpols, nss, stale_after_s=10, clock=clock, backoff_initial_s=0.01,
                         backoff_max_s=0.02, watch_timeout_s=1)  # fmt: skip
    cache.start()
    try:
        wait_for(lambda: netpols.list_calls > 2 and cache.informers[1].synced)
        assert not cache.synced
        assert _state(cache) is ClusterState.UNSYNCED
        netpols.fail_lists = 0
        wait_for(lambda: cache.synced)
        assert _state(cache) is ClusterState.SYNCED
        # the watch breaks and keeps failing: fine for a while, then unsynced
        netpols.fail_watches.extend([ConnectionError("down")] * 10_000)
        netpols.break_stream()
        wait_for(lambda: cache.informers[0].broken_since is not None)
        assert _state(cache) is ClusterState.SYNCED
        clock.now += 11
        assert _state(cache) is ClusterState.UNSYNCED
        assert cache.informers[0].age() >= 11
    finally:
        cache.stop()


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body).encode()


class _NotFound(Exception):
    status = 404
