"""The admission path without HTTP or TLS: what podgate's own work costs.

Drives the ASGI app a `podgate serve` worker builds (`Worker.app`: the fast
path, the handlers, the engine, metrics, the log line, Events to a sink that
only counts) in this process, with the ASGI messages handed in directly, and
the floor of `webhook_bench.py` (parse the review, answer `allowed: true`)
the same way, in turns. The CPU of this process per request is measured (all
its threads: the Event thread's work is counted), and the ratio taken
within each turn.

webhook_bench.py measures the whole request over TLS, against the floor on
the same server; this isolates the part that the server stack does not
decide. Issue 15 asks podgate's whole request to cost at most 2.5 times the
fast floor's; `issue_15_budget` says what that leaves for podgate's own work,
given `--fast-floor-ms` (the fast floor's whole request over TLS, as
webhook_bench measured it), on the most generous assumption: that podgate's
HTTP, TLS and loop cost no more than the floor's (its whole request less the
floor's work measured here), though podgate's answers are larger.

    python bench/admission_path.py                  # both scenarios, both routes
    python bench/admission_path.py --runs 9 --requests 20000

Prints one JSON document. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fixed_cluster import fixed_worker  # noqa: E402
from bench.webhook_bench import (  # noqa: E402
    DENY_ALL_CONFIG,
    NAMESPACE,
    _compliant_container,
    _failing_container,
    _review,
    floor_app,
)

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def podgate_app(config: str | None, cert_dir: Path, network_policies: list[dict[str, Any]]) -> App:
    """The app of one `podgate serve` worker, its cluster cache synced on a
    fixed cluster: the review's namespace with these NetworkPolicies."""
    from webhook.server.tls import ensure_self_signed
    from webhook.telemetry import logs
    from webhook.telemetry.health import Slots

    ensure_self_signed(cert_dir, ["localhost"])
    logs.configure("info")  # its handler is kept by the worker's own configure()
    # formatted and written, as in production, but not onto the terminal
    logs._handler.stream = open(os.devnull, "w")  # type: ignore[union-attr]  # noqa: SIM115
    worker = fixed_worker(
        cert_dir, config, [NAMESPACE], Slots(1), network_policies=network_policies
    )
    cache = worker.cache
    assert cache is not None  # fixed_worker always gives its worker one
    cache.start()
    if worker.recorder is not None:
        worker.recorder.start()
    deadline = time.monotonic() + 10
    while not cache.synced:
        if time.monotonic() > deadline:
            raise SystemExit("the fixed cluster's cache did not sync within 10 s")
        time.sleep(0.01)
    return worker.app


def driver(app: App, path: str, body: bytes) -> Callable[[int], Awaitable[bytes]]:
    """`n` requests to `app` one after the other; returns the last answer's body."""
    scope = {
        "type": "http",
        "path": path,
        "method": "POST",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    request = {"type": "http.request", "body": body, "more_body": False}
    answer: list[bytes] = [b""]

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            answer[0] = message.get("body", b"")

    async def run(n: int) -> bytes:
        for _ in range(n):
            await app(scope, receive, send)
        return answer[0]

    return run


def cpu_ms_per_request(
    loop: asyncio.AbstractEventLoop, run: Callable[[int], Awaitable[bytes]], n: int
) -> float:
    started = time.process_time()
    loop.run_until_complete(run(n))
    return (time.process_time() - started) / n * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="turns; medians are reported")
    parser.add_argument("--requests", type=int, default=10000, help="per measurement")
    parser.add_argument(
        "--fast-floor-ms",
        type=float,
        default=0.0572,
        help="the fast floor's whole request (webhook_bench, failing scenario)",
    )
    args = parser.parse_args(argv)

    loop = asyncio.new_event_loop()
    work = Path(tempfile.mkdtemp(prefix="podgate-admission-path-"))
    config = work / "deny-all.yaml"
    config.write_text(DENY_ALL_CONFIG)
    every_pod = {
        "metadata": {"name": "default-deny", "namespace": NAMESPACE},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    # webhook_bench's two reviews; here both against a synced cache, so that
    # require-network-policy is evaluated (a pass, then a fail), not skipped
    scenarios = {
        "compliant": (podgate_app(None, work / "compliant", [every_pod]), _compliant_container()),
        "failing": (podgate_app(str(config), work / "failing", []), _failing_container()),
    }
    turns: dict[str, Callable[[int], Awaitable[bytes]]] = {}
    for name, (app, container) in scenarios.items():
        body = json.dumps(_review(container)).encode()
        turns[f"{name}/floor"] = driver(floor_app, "/validate", body)
        for route in ("/validate", "/mutate"):
            turns[f"{name}{route}"] = driver(app, route, body)
    for run in turns.values():  # warm: caches, first Events, the allocator
        loop.run_until_complete(run(500))
    for name, must in (
        ("compliant/validate", b'"allowed":true}'),
        ("failing/validate", b'"allowed":false'),
    ):
        answer = loop.run_until_complete(turns[name](1))
        if must not in answer:  # a compliant answer carries no warnings
            raise SystemExit(f"{name}: expected {must!r} in {answer[:300]!r}")
    gc.collect()
    gc.freeze()  # as a worker does once it has started

    samples: dict[str, list[float]] = {name: [] for name in turns}
    for _ in range(args.runs):
        for name, run in turns.items():
            samples[name].append(cpu_ms_per_request(loop, run, args.requests))

    report: dict[str, Any] = {"runs": args.runs, "requests_per_measurement": args.requests}
    for scenario in scenarios:
        floor = samples[f"{scenario}/floor"]
        report[scenario] = {"floor_cpu_ms": round(statistics.median(floor), 4)}
        for route in ("validate", "mutate"):
            own = samples[f"{scenario}/{route}"]
            report[scenario][route] = {
                "cpu_ms": round(statistics.median(own), 4),
                "cpu_ms_runs": [round(x, 4) for x in own],
                "vs_floor": round(
                    statistics.median([o / f for o, f in zip(own, floor, strict=True)]), 2
                ),
            }
    floor_server = args.fast_floor_ms - report["failing"]["floor_cpu_ms"]
    budget = 2.5 * args.fast_floor_ms - floor_server
    failing = report["failing"]["validate"]["cpu_ms"]
    report["issue_15_budget"] = {
        "fast_floor_whole_request_ms": args.fast_floor_ms,
        "server_part_as_the_floors_ms": round(floor_server, 4),
        "budget_ms": round(budget, 4),
        "failing_validate_own_work_ms": failing,
        "own_work_vs_budget": round(failing / budget, 2) if budget > 0 else None,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
