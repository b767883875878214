"""Each policy's time budget, counted in the CPU time it spends on one object.

A budget on the wall clock would count the time the process waits for a
core: on a starved node (a tight CPU limit, a noisy neighbour, a flood of
requests) every policy would run over it at once, and the answers would be
decided by failure actions instead of by the policies. The CPU time of the
evaluating thread counts only the work the policy did on this object.

Reading a thread's CPU clock is a system call, a dozen times the cost of the
wall clock, so it is read only when it matters: a policy whose wall time is
within its budget is within it in CPU time too. Over it, the CPU time spent
since the clock's last reading, less the wall time that passed before the
policy began (an upper bound of what was spent then), is what the policy
spent at least; a starved process is never blamed for what it did not do.

Whatever a policy costs, it decides only the object at hand: nothing here
outlives one evaluation (docs/adr/0006-failure-semantics.md).
"""

from __future__ import annotations

import time

_thread_time = time.thread_time
_perf_counter = time.perf_counter


class CpuClock:
    """The CPU time a policy spent, for one evaluation on one thread."""

    __slots__ = ("_cpu", "_wall")

    def __init__(self) -> None:
        self._cpu = _thread_time()
        self._wall = _perf_counter()

    def spent_since(self, started: float) -> float:
        """At least the CPU seconds spent since `started` (a perf_counter
        reading taken after this clock was made or last read)."""
        cpu, wall = _thread_time(), _perf_counter()
        spent = (cpu - self._cpu) - max(0.0, started - self._wall)
        self._cpu, self._wall = cpu, wall
        return max(0.0, spent)


def over_budget(clock: CpuClock, started: float, ended: float, budget_s: float) -> float | None:
    """The CPU seconds a policy spent when they exceed its budget, else None.
    `started` and `ended` are the perf_counter readings around it."""
    if ended - started <= budget_s:  # never more CPU than wall time: no system call
        return None
    spent = clock.spent_since(started)
    return spent if spent > budget_s else None


def interrupted(pid: str, exc: BaseException) -> None:
    """Name the policy that was running when the caller's deadline stopped
    the engine (a BaseException, so that a policy's own `except Exception`
    cannot swallow it), for the message the caller answers with."""
    setattr(exc, _RUNNING, pid)


_RUNNING = "podgate_running"


def interrupted_policy(exc: BaseException) -> str | None:
    """The policy or mutation that was running when `exc` stopped the engine."""
    running = getattr(exc, _RUNNING, None)
    return running if isinstance(running, str) else None
