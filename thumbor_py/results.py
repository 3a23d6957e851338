"""Result keys, ETags and the guard that keeps a failing result storage from failing requests."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from thumbor_py import metrics
from thumbor_py.plugins import ResultStorage, StoredResult

log = logging.getLogger("thumbor_py.results")

# Bump when a change to rendering should not be served from results stored before it.
PIPELINE_VERSION = "1"

T = TypeVar("T")


def result_key(signed_path: str, format_class: str, version: str = PIPELINE_VERSION) -> str:
    """sha256 of the signed path (no signature), the format class and the pipeline version.

    The signature is not part of it, so rotating the key or switching a URL between signed
    and ``/unsafe/`` keeps the cache.
    """
    text = f"{version}\n{format_class}\n{signed_path}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class StorageCounters:
    """What happened to this storage's calls (Prometheus gets the same, per process)."""

    hit: int = 0
    miss: int = 0
    error: int = 0
    skipped: int = 0
    write: int = 0
    write_failure: int = 0

    def count(self, outcome: str) -> None:
        """Count one outcome here and in the ``thumbor_py_result_storage`` metric."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        metrics.RESULT_STORAGE.labels(outcome=outcome).inc()


class GuardedResultStorage:
    """Wraps a result storage with a per-call timeout and a pause after failures.

    A storage outage must never fail a request that could be served: every failure or
    timeout is logged and counted, lookups become misses, writes are dropped, and after a
    failure the storage is not called again for ``pause`` seconds, so a dead backend costs
    one timeout, not one per request.
    """

    def __init__(self, storage: ResultStorage, *, timeout: float, pause: float) -> None:
        self.storage = storage
        self.counters = StorageCounters()
        self._timeout = timeout
        self._pause = pause
        self._paused_until = 0.0

    @property
    def available(self) -> bool:
        """False while paused after a failure."""
        return time.monotonic() >= self._paused_until

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        if not self.available:
            self.counters.count("skipped")
            return False, None
        try:
            async with asyncio.timeout(self._timeout):
                return True, await make()
        except Exception as exc:  # any backend failure degrades; it is logged, not raised
            self.counters.count("error")
            self._paused_until = time.monotonic() + self._pause
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
            log.warning(
                "result storage %s failed (%s: %s); pausing it for %.0fs",
                what,
                reason,
                exc,
                self._pause,
            )
            return False, None

    async def get(self, key: str) -> StoredResult | None:
        """The stored metadata, or None on a miss, a failure, or while paused."""
        ok, result = await self._call("get", lambda: self.storage.get(key))
        if ok:
            self.counters.count("miss" if result is None else "hit")
        return result

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """The stored body, or None (vanished object, failure, or paused)."""
        _, data = await self._call("read", lambda: self.storage.read(key, result))
        return data

    async def put(self, key: str, result: StoredResult, data: bytes) -> bool:
        """Store a variant; False when the write failed or was skipped."""
        with metrics.timed("store"):
            ok, _ = await self._call("put", lambda: self.storage.put(key, result, data))
        self.counters.count("write" if ok else "write_failure")
        return ok

    async def purge(self, source: str) -> int:
        """Delete every stored variant of ``source``; an operator asked, so errors raise."""
        return await self.storage.purge(source)

    async def check(self) -> str | None:
        """Why the storage is not ready (None when it answers a lookup in time)."""
        probe = "0" * 64
        try:
            async with asyncio.timeout(min(self._timeout, 2.0)):
                await self.storage.get(probe)
        except Exception as exc:  # readiness reports any failure; it never raises
            return f"result storage: {type(exc).__name__}: {exc}".strip()
        return None
