"""The evaluation pool and the batching log handler."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time

import pytest

from tests.webhook.fakes import wait_for
from webhook.evaluator import EvaluationPool
from webhook.logs import BatchingHandler, JsonFormatter


def test_pool_runs_off_the_loop_and_returns_results_and_errors() -> None:
    pool = EvaluationPool(2)

    def boom() -> int:
        raise ValueError("bad")

    async def main() -> None:
        loop_thread = threading.get_ident()
        threads = await asyncio.gather(*(pool.submit(threading.get_ident) for _ in range(20)))
        assert loop_thread not in threads
        assert await pool.submit(lambda: 42) == 42
        with pytest.raises(ValueError, match="bad"):
            await pool.submit(boom)

    try:
        asyncio.run(main())
    finally:
        pool.shutdown()


def test_a_stuck_call_holds_only_its_thread() -> None:
    pool = EvaluationPool(2)
    release = threading.Event()

    async def main() -> None:
        stuck = pool.submit(release.wait)
        started = time.monotonic()
        assert await asyncio.wait_for(pool.submit(lambda: "fine"), 2) == "fine"
        assert time.monotonic() - started < 1
        stuck.cancel()  # the deadline gave up on it

    try:
        asyncio.run(main())
    finally:
        release.set()
        pool.shutdown()


def test_batching_handler_writes_json_lines_and_drops_when_full() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.01, max_pending=3)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("podgate.test.batching")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("admission", extra={"fields": {"uid": "u1", "decision": "allowed"}})
        wait_for(lambda: stream.getvalue().endswith("\n"))
        line = json.loads(stream.getvalue().splitlines()[0])
        assert line["msg"] == "admission"
        assert line["uid"] == "u1"
        assert line["level"] == "info"
        handler._pending.extend(["x", "y", "z"])  # the writer is behind
        logger.info("one too many")
        assert handler.dropped == 1
    finally:
        handler.close()
