"""Progress on stderr while a large input is read and checked, when stderr is
a terminal: `podgate check: checking 4,096/10,000 objects`. Nothing is shown
for the first half second (small inputs never flicker) or in a pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_QUIET_S = 0.5  # what finishes sooner never shows a progress line
_EVERY_S = 0.1


class Progress:
    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(callable(isatty) and isatty())
        self._stream, self._clock = stream, clock
        self._start = clock()
        self._shown_at = 0.0
        self._shown = False

    def __call__(self, done: int, total: int, what: str) -> None:
        """`done` of `total` `what` (files, objects) so far."""
        if not self.enabled:
            return
        now = self._clock()
        if now - self._start < _QUIET_S or now - self._shown_at < _EVERY_S:
            return
        self._shown_at, self._shown = now, True
        self._stream.write(f"\r\033[Kpodgate check: {what} {done:,}/{total:,}")
        self._stream.flush()

    def clear(self) -> None:
        """Remove the line before the report is printed."""
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._shown = False
