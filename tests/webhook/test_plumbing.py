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
from webhook import logs
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


def test_log_line_writes_what_a_record_would_and_yields_to_other_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.01)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    monkeypatch.setattr(logs, "_handler", handler)
    monkeypatch.setattr(root, "handlers", [handler])
    logger = logging.getLogger("podgate.test.direct")
    logger.setLevel(logging.INFO)
    fields = {"uid": "u1", "decision": "denied", "failed": ["require-probes:deny"]}
    records = 0
    make_record = logger.makeRecord

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        nonlocal records
        records += 1
        return make_record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(logger, "makeRecord", counting)
    try:
        logs.log_line(logger, logging.WARNING, "admission", fields)  # the direct path
        assert records == 0
        logger.log(logging.WARNING, "admission", extra={"fields": fields})  # a record
        logs.log_line(logger, logging.DEBUG, "admission", fields)  # below the level: nothing
        handler.flush()
        direct, recorded = (json.loads(line) for line in stream.getvalue().splitlines())
        assert direct.pop("ts")[:2] == recorded.pop("ts")[:2] == "20"
        assert direct == recorded
        assert direct["level"] == "warning"
        assert direct["failed"] == ["require-probes:deny"]

        class Capture(logging.Handler):
            def __init__(self) -> None:
                super().__init__()
                self.records: list[logging.LogRecord] = []

            def emit(self, record: logging.LogRecord) -> None:
                self.records.append(record)

        capture = Capture()
        root.handlers.append(capture)  # e.g. a test's caplog, an embedding program
        logs.log_line(logger, logging.INFO, "admission", fields)
        assert [getattr(r, "fields", None) for r in capture.records] == [fields]
    finally:
        handler.close()


def test_closing_stops_the_writer_before_the_last_write() -> None:
    # at exit a daemon writer caught mid-write would keep stderr's lock and
    # make the interpreter abort: close() must leave no writer behind
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60.0)  # the writer would not wake on its own
    handler.append("queued", logging.INFO)
    handler.close()
    assert not handler._thread.is_alive()
    assert stream.getvalue() == "queued\n"
    handler.append("during exit", logging.INFO)  # nobody left to write it later
    assert stream.getvalue() == "queued\nduring exit\n"
