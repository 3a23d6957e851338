"""The workers' shared load table, and the rule that decides which worker keeps a connection.

The table is one array of machine words in shared memory, created by the supervisor before it
forks, so every worker sees every other's counts without a round trip. Each word has exactly
one writer, so no lock is needed (a worker killed mid-update cannot leave a lock held):

- ``alive[w]``: worker ``w`` adopts connections (written by ``w``; cleared by the supervisor
  when ``w`` dies);
- ``connections[w]``: connections ``w`` has open (written by ``w``; zeroed by the supervisor
  when ``w`` dies);
- ``busy[w]``: connections of ``w`` that are working or about to: a request in flight, or
  accepted and not yet through their first request head (written by ``w``);
- ``received[w][s]``: connections ``w`` has received from ``s`` over its inbox (written by
  ``w``). A sender keeps its own count of what it sent; the difference is what is still in
  transit, so a burst of accepts does not pile onto a sibling that has not adopted yet.
"""

from __future__ import annotations

import ctypes
import multiprocessing
from collections.abc import Sequence

_ALIVE, _CONNECTIONS, _BUSY, _RECEIVED = 0, 1, 2, 3


class LoadTable:
    """Per-worker liveness and connection counts, shared by every process forked after it."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._stride = _RECEIVED + slots
        self._cells: ctypes.Array[ctypes.c_long] = multiprocessing.RawArray(
            ctypes.c_long, slots * self._stride
        )

    def alive(self, slot: int) -> bool:
        """Whether ``slot`` adopts connections now."""
        return bool(self._cells[slot * self._stride + _ALIVE])

    def set_alive(self, slot: int, alive: bool) -> None:
        """Written by the worker in ``slot`` (and by the supervisor when it dies)."""
        self._cells[slot * self._stride + _ALIVE] = int(alive)

    def connections(self, slot: int) -> int:
        """Connections the worker in ``slot`` has open."""
        return int(self._cells[slot * self._stride + _CONNECTIONS])

    def add_connections(self, slot: int, delta: int) -> int:
        """Written by the worker in ``slot`` only; returns the new count."""
        index = slot * self._stride + _CONNECTIONS
        self._cells[index] += delta
        return int(self._cells[index])

    def add_busy(self, slot: int, delta: int) -> None:
        """Written by the worker in ``slot`` only."""
        self._cells[slot * self._stride + _BUSY] += delta

    def load(self, slot: int) -> int:
        """What a new connection would queue behind: every connection, busy ones twice.

        Idle keep-alive connections count (a pool's idle connections get busy again), but
        less than busy ones, so a connection its client is closing right now weighs little.
        """
        base = slot * self._stride
        return int(self._cells[base + _CONNECTIONS]) + int(self._cells[base + _BUSY])

    def received(self, slot: int, sender: int) -> int:
        """Connections ``slot`` has received from ``sender`` (ever)."""
        return int(self._cells[slot * self._stride + _RECEIVED + sender])

    def note_received(self, slot: int, sender: int) -> None:
        """Written by the worker in ``slot`` only, after it counted the connection as its own."""
        self._cells[slot * self._stride + _RECEIVED + sender] += 1

    def worker_died(self, slot: int) -> None:
        """Supervisor: the worker in ``slot`` is gone; its connections went with it."""
        self.set_alive(slot, False)
        self._cells[slot * self._stride + _CONNECTIONS] = 0
        self._cells[slot * self._stride + _BUSY] = 0


def pick_sibling(own: int, siblings: Sequence[tuple[int, int]]) -> int | None:
    """The sibling that should take a new connection, or None to keep it.

    ``own`` is this worker's load, ``siblings`` the (slot, load) pairs of the live siblings
    (see :meth:`LoadTable.load`). The connection moves only when this worker has more than
    the least loaded one: ties stay, as a hand-over costs a few system calls.
    """
    if not siblings:
        return None
    slot, load = min(siblings, key=lambda pair: (pair[1], pair[0]))
    return slot if own > load else None
