"""The last step of a long-running command: leave with its exit code, promptly.

`podgate serve` and `podgate audit --watch` end with daemon threads still
alive: the watches of the cluster cache (blocked in a TLS read), the health
server, the log writer. CPython's finalization freezes such threads wherever
they are; one frozen while holding a lock that finalization then needs (the
stderr buffer's, a log handler's, OpenSSL's) makes the process abort with
SIGABRT or hang until the kubelet's SIGKILL, instead of exiting with its code.

Nothing those threads hold needs finalizing, so the process skips it: it
flushes the logs and stdio within a bounded time, then ends with `os._exit`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

FLUSH_WITHIN_S = 3.0


def _flush() -> None:
    logging.shutdown()  # writes what the log handlers still hold
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _daemons_alive() -> bool:
    return any(t.daemon and t.is_alive() for t in threading.enumerate())


def leave(code: int, *, flush_within_s: float = FLUSH_WITHIN_S) -> NoReturn:
    """Exit with `code`; without finalization when daemon threads still run.

    The flush runs in a thread of its own and gets `flush_within_s`: a stderr
    that nobody reads (a stalled container runtime) must not keep a stopping
    pod from exiting.
    """
    if not _daemons_alive():
        sys.exit(code)
    flusher = threading.Thread(target=_flush, name="podgate-exit", daemon=True)
    flusher.start()
    flusher.join(flush_within_s)
    os._exit(code)
