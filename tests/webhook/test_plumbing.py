"""The batching log handler and the refusal log."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tests.webhook.fakes import wait_for
from webhook.server.app import RefusalLog
from webhook.telemetry import logs
from webhook.telemetry.logs import BatchingHandler, JsonFormatter


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


def test_refusals_are_logged_at_most_once_an_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="podgate.admission")
    now = [100.0]
    refusals = RefusalLog(clock=lambda: now[0])
    for _ in range(3):
        refusals.refused("validate", 415, "content type must be application/json")

    def logged() -> list[dict[str, object]]:
        records = [r for r in caplog.records if r.getMessage() == "refused a request"]
        return [r.fields for r in records]  # type: ignore[attr-defined]

    assert logged() == [
        {"webhook": "validate", "status": 415, "reason": "content type must be application/json"}
    ]
    now[0] += 1.0  # a second later: the next refusal is logged, with the two left out
    refusals.refused("mutate", 400, "malformed JSON")
    last = logged()[-1]
    assert (last["webhook"], last["status"], last["refused_since_last_line"]) == ("mutate", 400, 3)
