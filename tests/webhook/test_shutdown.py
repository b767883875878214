"""`telemetry.exit.leave`: the exit code arrives, whatever the daemon threads are doing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, timeout: float) -> tuple[int, float, bytes, bytes]:
    """Run `script`, reading nothing from its stderr until it has exited."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        code = proc.wait(timeout=timeout)
    finally:
        proc.kill()
    elapsed = time.monotonic() - started
    out, err = proc.communicate()
    return code, elapsed, out, err


def test_a_log_writer_stuck_on_a_full_stderr_does_not_keep_the_process_alive() -> None:
    # The log writer blocks on the pipe (nobody reads it) holding its lock;
    # interpreter shutdown would wait for that lock forever.
    code, elapsed, _, _ = _run(
        """
        import logging, time
        from webhook.telemetry import logs
        from webhook.telemetry.exit import leave
        logs.configure("info")
        logging.getLogger("podgate.test").warning("x" * 1_000_000)
        time.sleep(0.5)  # the writer wakes for a warning at once
        leave(3, flush_within_s=1.0)
        """,
        timeout=30,
    )
    assert code == 3
    assert elapsed < 20


def test_without_daemon_threads_it_is_a_normal_exit() -> None:
    code, _, out, _ = _run(
        """
        import atexit
        from webhook.telemetry.exit import leave
        atexit.register(lambda: print("atexit ran", flush=True))
        leave(4)
        """,
        timeout=30,
    )
    assert (code, out) == (4, b"atexit ran\n")


def test_logged_lines_are_written_before_the_exit() -> None:
    code, _, _, err = _run(
        """
        import logging, threading, time
        from webhook.telemetry import logs
        from webhook.telemetry.exit import leave
        logs.configure("info")
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        logging.getLogger("podgate.test").info("last words")
        leave(0)
        """,
        timeout=30,
    )
    assert code == 0
    assert b'"msg":"last words"' in err


def test_a_crash_leaves_every_threads_stack_in_the_log() -> None:
    code, _, _, err = _run(
        """
        import os, threading, time
        from webhook.telemetry import logs
        logs.configure("info")
        def watching():
            time.sleep(60)
        threading.Thread(target=watching, daemon=True).start()
        time.sleep(0.2)
        os.abort()  # as a crash in C code would
        """,
        timeout=30,
    )
    assert code < 0
    assert b"Fatal Python error: Aborted" in err
    assert b'File "<string>", line 9' in err  # the main thread, where it crashed
    assert b'File "<string>", line 6 in watching' in err  # and the other one


def test_logs_can_be_configured_on_a_stderr_without_a_file_descriptor() -> None:
    code, _, out, _ = _run(
        """
        import io, sys
        sys.stderr = io.StringIO()  # embedded, or captured by a test runner
        from webhook.telemetry import logs
        logs.configure("info")
        print("configured")
        """,
        timeout=30,
    )
    assert (code, out) == (0, b"configured\n")
