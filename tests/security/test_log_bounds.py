"""Every field a request fills in a log line is cut to a documented size:
a 7 MB uid or username costs a line of a few kilobytes, not 7 MB per request."""

from __future__ import annotations

import json
import logging
import time

from webhook.telemetry.logs import (
    MAX_EXCEPTION_CHARS,
    MAX_FIELD_CHARS,
    MAX_FIELD_ITEMS,
    JsonFormatter,
)

HUGE = "u" * 7_000_000


def _line(msg: str = "admission", **fields: object) -> dict[str, object]:
    text = JsonFormatter().line(time.time(), "INFO", "podgate.admission", msg, fields)
    assert len(text) < 40_000, len(text)
    parsed: dict[str, object] = json.loads(text)
    return parsed


def test_strings_are_cut_saying_how_much_was_left_out() -> None:
    line = _line(uid=HUGE, user=HUGE, name="web", namespace="shop")
    assert line["name"] == "web"
    uid = line["uid"]
    assert isinstance(uid, str)
    assert uid.startswith("u" * MAX_FIELD_CHARS)
    assert uid.endswith(f"…[{7_000_000 - MAX_FIELD_CHARS} more characters]")


def test_lists_and_mappings_are_cut_and_nested_strings_too() -> None:
    line = _line(errors=[HUGE] * 10_000, labels={f"k{i}": HUGE for i in range(1000)})
    errors = line["errors"]
    assert isinstance(errors, list)
    assert len(errors) == MAX_FIELD_ITEMS + 1
    assert errors[-1] == f"…[{10_000 - MAX_FIELD_ITEMS} more items]"
    assert all(len(e) < MAX_FIELD_CHARS + 40 for e in errors)
    labels = line["labels"]
    assert isinstance(labels, dict)
    assert len(labels) == MAX_FIELD_ITEMS + 1


def test_the_message_and_an_exception_are_bounded_too() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError(HUGE)
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, HUGE, None, sys.exc_info())
    line = json.loads(formatter.format(record))
    assert len(line["msg"]) < MAX_FIELD_CHARS + 40
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert len(line["exception"]) < MAX_EXCEPTION_CHARS + 40
