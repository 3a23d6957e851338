"""Single flight: concurrent calls with one key share one execution and its outcome.

The pipeline uses it twice on the event loop (one render per result key, one load and
decode per source) and smart detection once in the render threads (one detection per
source frame), so the same registry works for coroutines (:meth:`SingleFlight.run`) and for
threads (:meth:`SingleFlight.run_blocking`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Abandoned(Exception):
    """The caller running an execution was cancelled: those that joined it start over."""


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
        """Await the execution under way for ``key``, or run ``make()`` as one.

        The first caller runs ``make()`` in its own task: no extra task, so no extra turns
        of the event loop, on the common path where nobody joins. If that caller is
        cancelled, the callers that joined it start over (one of them runs ``make()``
        again) instead of being cancelled with it.
        """
        while True:
            future, leader = self._join(key)
            if leader:
                return await self._lead(key, future, make)
            try:
                return await asyncio.shield(asyncio.wrap_future(future))
            except _Abandoned:
                continue

    async def _lead(self, key: K, future: Future[T], make: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await make()
        except BaseException as exc:  # joined callers re-raise it, or start over if cancelled
            abandoned = isinstance(exc, asyncio.CancelledError)
            self._forget(key)
            future.set_exception(_Abandoned() if abandoned else exc)
            raise
        self._forget(key)
        future.set_result(value)
        return value

    def run_blocking(self, key: K, make: Callable[[], T]) -> T:
        """In a thread: wait for the execution under way for ``key``, or run ``make()``."""
        future, leader = self._join(key)
        if leader:
            self._settle(key, future, make)
        return future.result()
