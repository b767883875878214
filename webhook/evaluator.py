"""The threads that run the engine, off the event loop.

`loop.run_in_executor` costs more than the evaluation itself here (about
100 µs against 50 µs for a typical Deployment): a concurrent future wrapped
in an asyncio one, a thread wake-up and a self-pipe write to come back per
request. This pool takes requests from a C-implemented SimpleQueue and hands
results back in batches, one `call_soon_threadsafe` for up to `batch`
results, which roughly halves the hop under load. A request
stuck in a policy holds only its own thread; the others keep draining the
queue, and the handler's deadline answers the stuck request anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Item = tuple[Callable[[], Any], "asyncio.Future[Any]"]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class EvaluationPool:
    def __init__(self, threads: int = 4, *, batch: int = 8, name: str = "podgate-eval") -> None:
        self.batch = batch
        # SimpleQueue is implemented in C: a put wakes a waiting thread without
        # the Python-level lock juggling of threading.Condition
        self._items: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        # started on first use: `podgate serve` evaluates inline and never needs them
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """Run `call` on a pool thread; the future resolves on the calling loop."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            for thread in self._threads:
                thread.start()
        future: asyncio.Future[T] = loop.create_future()
        self._items.put((call, future))
        return future

    def _work(self) -> None:
        items = self._items
        while True:
            item = items.get()
            done: list[_Done] = []
            while item is not None:
                call, future = item
                if not future.cancelled():  # else its deadline passed while it waited
                    try:
                        done.append((future, True, call()))
                    except BaseException as exc:  # handed back to the awaiting request
                        done.append((future, False, exc))
                if len(done) >= self.batch:
                    break
                try:
                    item = items.get_nowait()
                except queue.Empty:
                    break
            if done:
                self._post(done)
            if item is None:
                return

    def _post(self, done: list[_Done]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_complete, done)

    def shutdown(self) -> None:
        for thread in self._threads:
            if thread.is_alive():
                self._items.put(None)


def _complete(done: list[_Done]) -> None:
    for future, ok, value in done:
        if future.done():
            continue  # cancelled by the deadline
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
