"""The supervisor: forks the workers, restarts any that dies, and stops them all on SIGTERM.

A worker that dies (the OOM killer's SIGKILL, a crash, an exit) is logged with its exit
status or signal and started again in the same slot, so it gets the same listening socket and
inbox. A worker that keeps dying is restarted after a growing delay: ``server.restart_delay``
doubled at each death, at most ``server.restart_delay_max``; one that lived at least that
long counts as healthy again. ``thumbor_py_worker_restarts_total`` counts the restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from prometheus_client import Counter

log = logging.getLogger("thumbor_py.server")
# Created in the supervisor, which imports this module only once server.serve has pointed
# prometheus_client at the workers' shared folder: every worker's /metrics shows it.
WORKER_RESTARTS = Counter(
    "thumbor_py_worker_restarts",
    "Workers that died (signal or exit) and were started again by the supervisor.",
)
_POLL = 0.1  # seconds between checks for dead workers and due restarts


@dataclass
class _Slot:
    """One worker position: its current process and its restart history."""

    index: int
    pid: int = 0
    started: float = 0.0
    deaths: int = 0
    restart_at: float | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before restarting a worker that died."""

    first: float = 0.5
    ceiling: float = 30.0

    def next(self, lived: float, deaths: int) -> tuple[float, int]:
        """The delay and the new count of consecutive early deaths, after one more death."""
        deaths = 1 if lived >= self.ceiling else deaths + 1
        return min(self.ceiling, self.first * 2 ** (deaths - 1)), deaths


def describe_exit(status: int) -> str:
    """A ``waitpid`` status in words: ``exited with status 3``, ``killed by signal SIGKILL``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        core = " (core dumped)" if os.WCOREDUMP(status) else ""
        return f"killed by signal {name}{core}"
    return f"exited with status {os.WEXITSTATUS(status)}"


class Supervisor:
    """Runs ``start(slot)`` in ``count`` forked processes and keeps them running."""

    def __init__(
        self,
        count: int,
        start: Callable[[int], None],
        *,
        backoff: Backoff,
        on_death: Callable[[int, int], None],
        on_stop: Callable[[], None],
    ) -> None:
        self._slots = [_Slot(index) for index in range(count)]
        self._start = start
        self._backoff = backoff
        self._on_death = on_death  # (slot, pid): forget the dead worker's shared state
        self._on_stop = on_stop  # close the supervisor's copies of the listening sockets
        self._stopping = False
        self._status = 0

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT and every worker has exited; returns the exit status."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in self._slots:
            self._spawn(slot)
        while any(slot.pid or slot.restart_at is not None for slot in self._slots):
            self._reap()
            self._restart_due()
            time.sleep(_POLL)
        return self._status

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            self._on_stop()
        for slot in self._slots:
            slot.restart_at = None
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _spawn(self, slot: _Slot) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                self._start(slot.index)
            except BaseException:
                log.exception("worker %d failed", slot.index)
                code = 1
            finally:
                os._exit(code)
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is not None:
                self._died(slot, status)

    def _died(self, slot: _Slot, status: int) -> None:
        pid, slot.pid = slot.pid, 0
        self._on_death(slot.index, pid)
        lived = time.monotonic() - slot.started
        if self._stopping:
            code = os.waitstatus_to_exitcode(status)
            self._status = self._status or max(code, 0)
            return
        delay, slot.deaths = self._backoff.next(lived, slot.deaths)
        slot.restart_at = time.monotonic() + delay
        log.error(
            "worker %d (pid %d) %s after %.1f s; starting a replacement in %.1f s",
            slot.index,
            pid,
            describe_exit(status),
            lived,
            delay,
            extra={"fields": {"worker": slot.index, "pid": pid, "status": status}},
        )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None and slot.restart_at <= now and not self._stopping:
                self._spawn(slot)
                WORKER_RESTARTS.inc()
                log.info("worker %d restarted as pid %d", slot.index, slot.pid)
