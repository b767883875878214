"""Each policy's time budget, and the cool-down of one that runs over it.

A policy that is slow once is likely slow again: rather than let it eat the
time budget of every following request, it is suspended for a cool-down and
decided by its failure action meanwhile. The webhook's overall deadline
(webhook/server/deadline.py) interrupts one that does not return.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from policies.views import LIST_KEYS, PodView


@dataclass
class BudgetGuard:
    """Suspends a policy for a cool-down after it runs over its time budget."""

    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    starts_cool_downs: bool = True

    def suspended(self, policy_id: str) -> bool:
        until = self._until.get(policy_id)
        return until is not None and self.clock() < until

    def overran(self, policy_id: str) -> None:
        if not self.starts_cool_downs:
            return
        with self._lock:
            self._until[policy_id] = self.clock() + self.cooldown_s

    def honoured_only(self) -> BudgetGuard:
        """The same cool-downs, honoured, but none started by who uses this one
        (a dry run: anyone may send one)."""
        return replace(self, starts_cool_downs=False)


# A cool-down is for a policy that is slow, not for an object that is huge:
# past this many containers a policy over its budget is the object's doing
# (anyone may send one, and the cool-down would decide everyone's requests).
COOL_DOWN_MAX_CONTAINERS = 64


def guard_for(pod: PodView, guard: BudgetGuard | None) -> BudgetGuard | None:
    if guard is None or not guard.starts_cool_downs:
        return guard
    containers = sum(len(c) for c in (pod.spec.get(k) for k in LIST_KEYS) if isinstance(c, list))
    return guard if containers <= COOL_DOWN_MAX_CONTAINERS else guard.honoured_only()


def interrupted(
    guard: BudgetGuard | None, pid: str, elapsed: float, budget_s: float, exc: BaseException
) -> None:
    """A policy stopped by the caller's deadline (a BaseException, so that a
    policy's own `except Exception` cannot swallow it) ran over its budget
    too: it is suspended like one that returned late, or the next request
    would wait for it again; and the exception names it for the caller."""
    if guard is not None and elapsed > budget_s:
        guard.overran(pid)
    setattr(exc, _RUNNING, pid)


_RUNNING = "podgate_running"


def interrupted_policy(exc: BaseException) -> str | None:
    """The policy or mutation that was running when `exc` stopped the engine."""
    running = getattr(exc, _RUNNING, None)
    return running if isinstance(running, str) else None
