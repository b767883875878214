"""A deadline for code running on the main thread, enforced by SIGALRM.

`podgate serve` evaluates inline on its event loop, on each worker process's
main thread: a hand-off to another thread costs more than a typical
evaluation. Inline, a runaway policy would stall the loop, so the deadline
is a real-time timer whose signal handler raises `DeadlineExceeded` inside
the evaluation, between two bytecodes of whatever policy is running
(`time.sleep` included), which also frees the loop from a policy that never
returns.

`DeadlineExceeded` derives from BaseException so that the engine's and the
policies' `except Exception` do not swallow it. Code in C that does not
return to the interpreter (a catastrophic regular expression) cannot be
interrupted this way, nor by any other.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(BaseException):
    """Raised inside the guarded call when its time is up."""


class AlarmDeadline:
    """Runs calls on the main thread, each interrupted after `seconds`.

    One per process: it owns SIGALRM and ITIMER_REAL. The handler raises
    only while a call is in progress, so an alarm that fires just after the
    call returned (a race the timer's cancellation cannot rule out) does
    nothing.
    """

    def __init__(self) -> None:
        if not on_main_thread():
            raise RuntimeError("an AlarmDeadline must be made on the main thread")
        self._active = False
        signal.signal(signal.SIGALRM, self._fire)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self._active:
            self._active = False
            raise DeadlineExceeded

    def run(self, call: Callable[[], T], seconds: float) -> T:
        if seconds <= 0:
            raise DeadlineExceeded
        self._active = True
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return call()
        finally:
            self._active = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def close(self) -> None:
        self._active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
