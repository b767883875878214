"""The alarm that interrupts an inline evaluation at its deadline (main thread only)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from webhook.server.deadline import AlarmDeadline, DeadlineExceeded


@pytest.fixture
def alarm() -> Iterator[AlarmDeadline]:
    guard = AlarmDeadline()
    yield guard
    guard.close()


def test_a_call_that_finishes_returns_and_leaves_no_timer(alarm: AlarmDeadline) -> None:
    assert alarm.run(lambda: 42, 5.0) == 42
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_sleeping_call_is_interrupted(alarm: AlarmDeadline) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        alarm.run(lambda: time.sleep(5), 0.2)
    assert time.monotonic() - started < 1.5


def test_a_call_that_never_returns_is_interrupted(alarm: AlarmDeadline) -> None:
    def spin() -> None:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        alarm.run(spin, 0.2)
    assert time.monotonic() - started < 1.5


def test_except_exception_in_a_policy_does_not_swallow_it(alarm: AlarmDeadline) -> None:
    swallowed: list[Exception] = []

    def careless() -> None:
        try:
            time.sleep(5)
        except Exception as exc:
            swallowed.append(exc)

    with pytest.raises(DeadlineExceeded):
        alarm.run(careless, 0.2)
    assert swallowed == []


def test_an_alarm_after_the_call_returned_does_nothing(alarm: AlarmDeadline) -> None:
    alarm.run(lambda: None, 5.0)
    signal.setitimer(signal.ITIMER_REAL, 0.05)  # as if cancelling came too late
    time.sleep(0.3)  # the handler runs here, outside any call, and must not raise


def test_no_time_left_raises_at_once(alarm: AlarmDeadline) -> None:
    ran: list[bool] = []
    with pytest.raises(DeadlineExceeded):
        alarm.run(lambda: ran.append(True), 0)
    assert ran == []


def test_only_on_the_main_thread() -> None:
    errors: list[BaseException] = []

    def make() -> None:
        try:
            AlarmDeadline()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])
