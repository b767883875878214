"""Starved of CPU, podgate answers later or not at all, but never admits
what it must refuse: budgets count the CPU time a policy spent, not the
time it waited, and a request past the deadline is decided by the failure
action of each policy not evaluated (deny for a deny policy).

Two ways to starve it, each undone afterwards: a CPU quota of 1% on a
cgroup made for the server's process (cgroup v2 `cpu.max`, or v1
`cpu.cfs_quota_us`), and busy processes pinned to the one core the server
is pinned to. The figures are printed as JSON."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import Server, start_server, tls_context
from tests.integration.reviews import container, pod, review

CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
QUOTA = 0.01  # of one CPU: the smallest quota a cgroup takes (1 ms a period)
REVIEWS = 120
CLIENTS = 8
CLIENT_TIMEOUT_S = 10.0  # the longest webhook timeoutSeconds the API server allows is 30

# Each refused by require-resources and require-non-root; the large one costs
# real CPU time per review (64 containers).
SMALL = pod("starved", "shop", container("web", resources={}, securityContext={}))
LARGE = pod(
    "starved-large",
    "shop",
    *(container(f"c{i}", resources={}, securityContext={}) for i in range(64)),
)


def _cgroup_for(pid: int) -> AbstractContextManager[None] | None:
    """A context that holds `pid` in a cgroup limited to QUOTA, or None when
    this machine gives no writable CPU controller."""
    name = f"podgate-starve-{os.getpid()}"
    v2 = CGROUP_V2 / "cgroup.controllers"
    if v2.exists() and "cpu" in v2.read_text().split():
        return _v2(CGROUP_V2 / name, pid)
    if (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists() and os.access(CGROUP_V1_CPU, os.W_OK):
        return _v1(CGROUP_V1_CPU / name, pid)
    return None


@contextmanager
def _v2(group: Path, pid: int) -> Iterator[None]:
    group.mkdir()
    try:
        (group / "cpu.max").write_text(f"{int(QUOTA * 100_000)} 100000")
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        _leave(group, CGROUP_V2, pid)


@contextmanager
def _v1(group: Path, pid: int) -> Iterator[None]:
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(QUOTA * 100_000)))
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        _leave(group, CGROUP_V1_CPU, pid)


def _leave(group: Path, parent: Path, pid: int) -> None:
    # back to the parent before removal (it may have ended meanwhile)
    with contextlib.suppress(OSError):
        (parent / "cgroup.procs").write_text(str(pid))
    group.rmdir()


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


@contextmanager
def _competing_load(pid: int, processes: int = 16) -> Iterator[None]:
    """Pin the server to one core and run busy processes on that core."""
    core = min(os.sched_getaffinity(pid))
    before = os.sched_getaffinity(pid)
    os.sched_setaffinity(pid, {core})
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    spinners = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(processes)]
    try:
        for spinner in spinners:
            spinner.start()
            assert spinner.pid is not None
            os.sched_setaffinity(spinner.pid, {core})
        yield
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join(5)
            if spinner.is_alive():
                spinner.kill()
        if Path(f"/proc/{pid}").exists():
            os.sched_setaffinity(pid, before)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # a short deadline, so that starved reviews run past it: each policy not
    # evaluated by then decides by its failure action
    srv = start_server(
        tmp_path_factory.mktemp("starved"), config_text="enforcement: enforce\n", deadline_s=0.3
    )
    yield srv
    srv.stop()


def _flood(server: Server) -> dict[str, Any]:
    """Send REVIEWS must-deny reviews from CLIENTS threads; count the answers."""
    counts: dict[str, Any] = {
        "sent": 0,
        "denied": 0,
        "admitted": 0,
        "unanswered": 0,
        "not_evaluated": 0,
    }
    lock = threading.Lock()
    latencies: list[float] = []

    client = httpx.Client(
        base_url=f"https://localhost:{server.port}",
        verify=tls_context(server.ca_file),
        timeout=CLIENT_TIMEOUT_S,
    )

    def one(index: int) -> None:
        body = review(LARGE if index % 2 == 0 else SMALL)
        started = time.monotonic()
        try:
            response = client.post("/validate", json=body).json()["response"]
        except (httpx.HTTPError, KeyError, ValueError):
            with lock:
                counts["sent"] += 1
                counts["unanswered"] += 1
            return
        with lock:
            counts["sent"] += 1
            latencies.append(time.monotonic() - started)
            if response["allowed"]:
                counts["admitted"] += 1
            else:
                counts["denied"] += 1
                if "could not evaluate" in response["status"]["message"]:
                    counts["not_evaluated"] += 1

    with client, ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(REVIEWS)))
    latencies.sort()
    counts["p50_s"] = round(latencies[len(latencies) // 2], 3) if latencies else None
    counts["max_s"] = round(latencies[-1], 3) if latencies else None
    return counts


STARVERS: dict[str, Callable[[int], AbstractContextManager[None] | None]] = {
    "cpu-quota-1%": _cgroup_for,
    "competing-load-on-its-core": _competing_load,
}


@pytest.mark.parametrize("how", list(STARVERS))
def test_starved_of_cpu_no_denial_becomes_an_admission(server: Server, how: str) -> None:
    starve = STARVERS[how](server.process.pid)
    if starve is None:
        pytest.skip("no writable cgroup CPU controller on this machine")
    with starve:
        figures = _flood(server)
    print(json.dumps({"starved_by": how, **figures}))
    assert figures["sent"] == REVIEWS
    assert figures["admitted"] == 0, figures
    assert figures["denied"] > 0, figures  # it did answer, slowly
