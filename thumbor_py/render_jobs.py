"""Admission and the render threads: how many renders a process takes on, and how their
jobs run.

Each process admits at most ``max_pending`` renders (loading, queued or rendering); one
more is refused at once with 503 and ``Retry-After`` rather than queued. A slot is freed
when its request is answered *and* every render-thread job it started has finished, so a
request answered 503 at its deadline does not free a thread still busy. Every admitted
render has a deadline (``server.request_timeout``): past it the request is answered 503,
and a job still waiting for a thread is dropped before it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TypeVar

from thumbor_py import metrics
from thumbor_py.errors import OverloadedError

T = TypeVar("T")


class _Slot:
    """One admitted render: freed once its request is done and its thread jobs are."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        self._holders = 1  # the request itself

    def hold(self) -> bool:
        """Count one more holder (a thread job); False once the slot was freed."""
        if not self._holders:
            return False
        self._holders += 1
        return True

    def done(self) -> None:
        """One holder finished; the last one frees the slot."""
        self._holders -= 1
        if not self._holders:
            self._release()


@dataclass(frozen=True, slots=True)
class Admitted:
    """One admitted render: its slot, its deadline (``time.monotonic()``, or ``None``) and
    the render threads its jobs run on."""

    executor: Executor
    slot: _Slot
    deadline: float | None

    async def run(self, job: Callable[[], T], *, stage: str | None = "render") -> T:
        """Run ``job`` on a render thread, timed as ``stage`` (``None``: the job times its
        own steps); if this request is cancelled (its deadline passed) while the job still
        waits for a thread, the job is dropped and never starts. The job holds the slot
        until it has finished (or was dropped)."""
        metrics.QUEUE_DEPTH.inc()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        settle = functools.partial(_settle, answer, self.slot if self.slot.hold() else None)
        run = functools.partial(_in_thread, time.perf_counter(), self.deadline, job, stage)
        future = self.executor.submit(contextvars.copy_context().run, run)
        future.add_done_callback(functools.partial(_on_loop, loop, settle))
        try:
            return await answer
        except asyncio.CancelledError:
            if future.cancel():
                metrics.QUEUE_DEPTH.dec()
            raise


class RenderJobs:
    """Admits renders up to ``max_pending`` and runs their jobs on ``executor``."""

    def __init__(self, executor: Executor, *, max_pending: int, deadline: float | None) -> None:
        self._executor = executor
        self._max_pending = max_pending
        self._deadline = deadline
        self._pending = 0

    @property
    def pending(self) -> int:
        """Renders admitted and not yet finished (loading, queued or rendering)."""
        return self._pending

    async def admit(self, work: Callable[[Admitted], Awaitable[T]]) -> T:
        """``work`` as one admitted render, within its deadline; refused (503) when full."""
        if self._pending >= self._max_pending:
            raise OverloadedError("render queue is full, retry later")
        self._pending += 1
        slot = _Slot(self._free_slot)
        deadline = None if self._deadline is None else time.monotonic() + self._deadline
        scope = asyncio.timeout(self._deadline)
        try:
            async with scope:
                return await work(Admitted(self._executor, slot, deadline))
        except TimeoutError:
            if not scope.expired():
                raise
            raise OverloadedError(f"no answer within {self._deadline:g} s, retry later") from None
        finally:
            slot.done()

    def _free_slot(self) -> None:
        self._pending -= 1


def _on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[Future[T]], None], done: Future[T]
) -> None:
    """A thread job's done callback: ``callback(done)`` on the event loop, one wake-up."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits any more
        loop.call_soon_threadsafe(callback, done)


def _settle(answer: asyncio.Future[T], slot: _Slot | None, done: Future[T]) -> None:
    """On the loop, once a thread job finished (or was dropped): free its hold on the
    slot, and hand its outcome to the request, unless that stopped waiting."""
    if slot is not None:
        slot.done()
    if answer.cancelled():
        return
    if done.cancelled():
        answer.cancel()
    elif (error := done.exception()) is not None:
        answer.set_exception(error)
    else:
        answer.set_result(done.result())


def _in_thread(
    queued_at: float, deadline: float | None, job: Callable[[], T], stage: str | None
) -> T:
    metrics.QUEUE_DEPTH.dec()
    metrics.stage_seconds("queue_wait").observe(time.perf_counter() - queued_at)
    if deadline is not None and time.monotonic() > deadline:
        # Nobody waits for this answer any more; do not spend a CPU on it.
        raise OverloadedError("the request's deadline passed while it was queued")
    metrics.IN_FLIGHT.inc()
    try:
        if stage is None:  # the job times its own steps
            return job()
        with metrics.timed(stage):
            return job()
    finally:
        metrics.IN_FLIGHT.dec()
