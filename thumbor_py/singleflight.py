"""Single flight: concurrent calls with one key share one execution and its outcome.

The pipeline uses it twice on the event loop (one render per result key, one load and
decode per source) and smart detection once in the render threads (one detection per
source frame), so the same registry works for coroutines (:meth:`SingleFlight.run`) and for
threads (:meth:`SingleFlight.run_blocking`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """Calls that arrive while one with the same key runs wait for it and share its result
    (or its error); the next call after it finished starts a new execution."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the registry only, held for a dict operation
        self._running: dict[K, Future[T]] = {}

    def running(self, key: K) -> bool:
        """Whether an execution for ``key`` is under way (a call now would join it)."""
        with self._lock:
            return key in self._running

    def _join(self, key: K) -> tuple[Future[T], bool]:
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running, False
            future: Future[T] = Future()
            self._running[key] = future
            return future, True

    def _settle(self, key: K, future: Future[T], outcome: Callable[[], T]) -> None:
        try:
            value = outcome()
        except BaseException as exc:  # the outcome is an error: every caller re-raises it
            self._forget(key)
            future.set_exception(exc)
        else:
            self._forget(key)
            future.set_result(value)

    def _forget(self, key: K) -> None:
        with self._lock:
            del self._running[key]

    async def run(self, key: K, make: Callable[[], Awaitable[T]]) -> T:
        """Await the execution under way for ``key``, or start ``make()`` as one.

        The execution runs as its own task: a caller that is cancelled stops waiting for
        it, but the others still get its result.
        """
        future, leader = self._join(key)
        if leader:
            task = asyncio.ensure_future(make())
            task.add_done_callback(
                functools.partial(self._task_done, key, future)  # type: ignore[arg-type]
            )
            # The leader awaits its task itself: waiting through the thread-safe future
            # would cost a wake-up of the event loop (a self-pipe write) per request.
            return await asyncio.shield(task)
        return await asyncio.shield(asyncio.wrap_future(future))

    def _task_done(self, key: K, future: Future[T], task: asyncio.Task[T]) -> None:
        self._settle(key, future, task.result)

    def run_blocking(self, key: K, make: Callable[[], T]) -> T:
        """In a thread: wait for the execution under way for ``key``, or run ``make()``."""
        future, leader = self._join(key)
        if leader:
            self._settle(key, future, make)
        return future.result()
