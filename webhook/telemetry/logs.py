"""Structured logging: one JSON object per line on stderr.

Log shippers in a cluster parse JSON lines without configuration; a line per
admission with fixed keys is what an operator greps when a deploy was refused.
Fields go in `extra={"fields": {...}}` and are merged into the object.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import faulthandler
import logging
import sys
import threading
import time
from typing import Any

from webhook.telemetry import jsonout

ADMISSION_LOGGER = "podgate.admission"

# Bounds on what one line may carry, whoever filled its fields: a request's
# uid, user or object names are the sender's to choose, at any length.
MAX_FIELD_CHARS = 512  # each string in a line's fields (and its message)
MAX_FIELD_ITEMS = 32  # each list or mapping in them
MAX_EXCEPTION_CHARS = 8192  # a traceback


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def bounded(value: Any, depth: int = 0) -> Any:
    """`value` with every string cut to MAX_FIELD_CHARS and every list or
    mapping to MAX_FIELD_ITEMS, saying how much was left out."""
    if isinstance(value, str):
        return _cut(value, MAX_FIELD_CHARS)
    if isinstance(value, list | tuple):
        items = [bounded(v, depth + 1) for v in value[:MAX_FIELD_ITEMS]] if depth < 3 else []
        if len(value) > len(items):
            items.append(f"…[{len(value) - len(items)} more items]")
        return items
    if isinstance(value, dict):
        kept = list(value.items())[:MAX_FIELD_ITEMS] if depth < 3 else []
        out = {str(k)[:MAX_FIELD_CHARS]: bounded(v, depth + 1) for k, v in kept}
        if len(value) > len(kept):
            out["…"] = f"{len(value) - len(kept)} more keys"
        return out
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Runs for every admission, so the
    timestamp's date and time are formatted once per second."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            fields if isinstance(fields, dict) else None,
            exception,
        )

    def line(
        self,
        created: float,
        level_name: str,
        logger: str,
        msg: str,
        fields: dict[str, Any] | None,
        exception: str | None = None,
    ) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(created),
            "level": level_name.lower(),
            "logger": logger,
            "msg": msg if len(msg) <= MAX_FIELD_CHARS else bounded(msg),
        }
        if fields:
            for key, value in fields.items():
                # the common fields of an admission line, checked inline
                if value.__class__ is str and len(value) <= MAX_FIELD_CHARS:
                    entry[key] = value
                else:
                    entry[key] = bounded(value)
        if exception:
            entry["exception"] = _cut(exception, MAX_EXCEPTION_CHARS)
        return jsonout.dumps(entry).decode()


class BatchingHandler(logging.Handler):
    """Formats on the caller's thread, writes from a background thread in batches.

    A log line per admission must not put the event loop at the mercy of the
    stderr pipe: when the container runtime reads slowly, lines beyond
    `max_pending` are dropped (and counted) rather than requests delayed. The
    writer wakes every `interval` seconds, not per line: waking a thread per
    record costs more CPU than formatting it.

    `close` (run at exit by logging.shutdown) stops the writer before the
    last write: a daemon thread frozen by interpreter shutdown in the middle
    of a write to stderr keeps the stream's lock, and the interpreter then
    aborts when it flushes stderr itself (seen as an exit by SIGABRT).
    """

    def __init__(
        self, stream: Any = None, *, interval: float = 0.05, max_pending: int = 10_000
    ) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.max_pending = interval, max_pending
        self.dropped = 0
        self._pending: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._closed = False
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="podgate-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.append(line, record.levelno)

    def append(self, line: str, level: int) -> None:
        """Queue a formatted line (what `emit` does after formatting)."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append(line)
        if self._closed:
            self._write()  # no writer any more (records logged during exit)
        elif level >= logging.WARNING:
            self._wake.set()  # problems are written at once

    def _write(self) -> None:
        with self._write_lock:
            lines: list[str] = []
            while self._pending:
                lines.append(self._pending.popleft())
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass  # stderr closed: nothing sensible to do

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._write()

    def flush(self) -> None:
        self._write()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._write()
        super().close()


_handler: BatchingHandler | None = None


def configure(level: str = "info") -> None:
    """JSON lines on stderr for podgate and uvicorn.

    uvicorn's access log is off: the admission line carries more and would
    otherwise be doubled.
    """
    global _handler
    # A crash in C code (SIGSEGV, SIGABRT) prints every thread's stack on
    # stderr, where `kubectl logs --previous` finds it, instead of nothing.
    # A stderr without a file descriptor (embedded, captured) has no use for it.
    with contextlib.suppress(OSError, ValueError, RuntimeError, AttributeError):
        faulthandler.enable()
    # JsonFormatter writes none of the thread, process or caller fields: not
    # gathering them saves work on every record (the Logging HOWTO's
    # "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    if _handler is None:
        _handler = BatchingHandler()
        _handler.setFormatter(JsonFormatter())
        atexit.register(_handler.close)
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True
    # the kubernetes client logs every retry of urllib3 at warning level
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def log_line(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, msg, extra={"fields": fields})`, for the line of every
    admission: when podgate's own handler is the only one the line reaches
    and nothing filters it (as `configure` sets up `serve`), the line is
    formatted and queued directly, without a LogRecord and the logging
    module's dispatch; any other set-up (a test capturing logs, an embedding
    program's handlers) gets the ordinary record."""
    if not logger.isEnabledFor(level):
        return
    handler = _handler
    formatter = handler.formatter if handler is not None else None
    if handler is None or not isinstance(formatter, JsonFormatter) or not _only(logger, handler):
        logger.log(level, msg, extra={"fields": fields})
        return
    if level < handler.level:
        return
    line = formatter.line(time.time(), logging.getLevelName(level), logger.name, msg, fields)
    handler.append(line, level)


def _only(logger: logging.Logger, handler: logging.Handler) -> bool:
    """Whether `handler` is the only handler the logger's records reach, and
    no filter is on the way (the walk logging.Logger.callHandlers makes)."""
    if handler.filters:
        return False
    node: logging.Logger | None = logger
    found = False
    while node is not None:
        if node.filters or node.disabled:
            return False
        for each in node.handlers:
            if each is not handler:
                return False
            found = True
        if not node.propagate:
            break
        node = node.parent
    return found
