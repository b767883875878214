"""podgate's workers as `podgate serve` runs them, against a cluster that never changes.

The webhook bench's failing scenario needs require-network-policy to deny,
which it does only with a synced cluster cache; without a cluster it reports
`skip`. So this serves podgate's own `Worker` with a real `ClusterCache` fed
by a list that never changes (the namespaces it is given, no NetworkPolicy)
and an Event sink that only counts, handed in as `podgate serve` hands in the
watches and the API's sink. Everything from the socket to the answer is the
production path; only the cluster behind the cache is fixed.

    python -m bench.fixed_cluster [--stack auto|h11] PORT WORKERS CERT_DIR CONFIG NAMESPACE...
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:  # imported where used: serve() sets up multiprocess metrics first
    from webhook.server.worker import Worker


class FixedList:
    """A ListWatch whose list never changes and whose watch never sends anything."""

    def __init__(self, resource: str, items: Sequence[dict[str, Any]]) -> None:
        self.resource = resource
        self._items = [dict(i) for i in items]

    def list(self) -> tuple[list[dict[str, Any]], str]:
        return [dict(i) for i in self._items], "1"

    def watch(self, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        # A real watch blocks until its timeout when nothing changes; returning
        # at once would make the informer spin.
        time.sleep(timeout_s)
        return iter(())


class CountingSink:
    """An Event sink that keeps nothing: what an Event costs the request is
    recording it, which podgate does before any API call."""

    def __init__(self) -> None:
        self.created = 0

    def create(self, event: Any, count: int, first: dt.datetime) -> str:
        self.created += 1
        return f"bench-{self.created}"

    def update_count(self, namespace: str, name: str, count: int, last: dt.datetime) -> None:
        return None


def fixed_worker(
    cert_dir: str | Path,
    config: str | None,
    namespaces: Sequence[str],
    slots: Any,
    *,
    network_policies: Sequence[dict[str, Any]] = (),
    index: int = 0,
    stack: str = "auto",
) -> Worker:
    """A worker as `webhook.server.serve.worker_main` makes one (`config` None:
    the built-in one), its cache fed by these namespaces and NetworkPolicies."""
    from webhook.cluster.cache import ClusterCache
    from webhook.cluster.informer import NAMESPACES, NETWORK_POLICIES
    from webhook.server.worker import Worker, WorkerSettings
    from webhook.telemetry import logs

    logs.configure("info")
    settings = WorkerSettings(
        cert_file=f"{cert_dir}/tls.crt",
        key_file=f"{cert_dir}/tls.key",
        config_path=config,
        shutdown_delay_s=0.0,
        stack="h11" if stack == "h11" else "auto",
    )
    cache = ClusterCache(
        FixedList(NETWORK_POLICIES, network_policies),
        FixedList(NAMESPACES, [{"metadata": {"name": ns, "labels": {}}} for ns in namespaces]),
    )
    return Worker(settings, slots=slots, index=index, cache=cache, sink=CountingSink())


def run_worker(
    cert_dir: str,
    config: str,
    namespaces: Sequence[str],
    sock: socket.socket,
    slots: Any,
    index: int,
    stack: str = "auto",
) -> None:
    """One worker process, as `webhook.server.serve.worker_main` runs one."""
    fixed_worker(cert_dir, config, namespaces, slots, index=index, stack=stack).run(sock)


def serve(
    port: int,
    workers: int,
    cert_dir: str,
    config: str,
    namespaces: Sequence[str],
    stack: str = "auto",
) -> None:
    """Bind as `podgate serve` binds, then run one worker here or spawn several
    on the shared socket (as its supervisor does, without restarts)."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # as `podgate serve --workers N`: metrics shared through files
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="podgate-bench-metrics-")
    from webhook.server.serve import bind
    from webhook.telemetry.health import Slots

    sock = bind("127.0.0.1", port)
    slots = Slots(workers)
    if workers == 1:
        run_worker(cert_dir, config, namespaces, sock, slots, 0, stack)
        return
    multiprocessing.allow_connection_pickling()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=run_worker, args=(cert_dir, config, namespaces, sock, slots, i, stack))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()

    def stop(sig: int, frame: object) -> None:
        for proc in procs:  # each drains and exits, as under podgate's supervisor
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    for proc in procs:
        proc.join()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = "auto"
    if arguments[:1] == ["--stack"]:
        chosen, arguments = arguments[1], arguments[2:]
    port, count, certs, config_file, *names = arguments
    serve(int(port), int(count), certs, config_file, names, chosen)
