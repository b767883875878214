"""The processes a benchmark measures: their CPU from /proc, and stopping them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path


def with_children(pid: int) -> list[int]:
    """A process and its direct children (a server's spawned workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [pid, *(int(p) for p in children.read_text().split())]
    except OSError:
        return [pid]


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes (all their threads) so far;
    one that has gone counts nothing."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
