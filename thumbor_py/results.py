"""Result keys, ETags and the guard that keeps a failing result storage from failing requests.

The guard tells a backend failure (timeouts, connection and I/O errors, botocore's and
PyMongo's errors, :class:`~thumbor_py.errors.StorageError`) from a bug (anything else): a
failure is logged in one line, pauses the storage and marks it degraded; a bug is logged
with its traceback and counted in ``thumbor_py_storage_bugs_total``, and pauses nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from thumbor_py import metrics
from thumbor_py.errors import StorageError, StorageKeyError, StorageUnavailableError
from thumbor_py.plugins import Lifecycle, ResultStorage, StoredResult

log = logging.getLogger("thumbor_py.results")

# Bump when a change to rendering should not be served from results stored before it.
PIPELINE_VERSION = "1"

T = TypeVar("T")
# A key no real variant has: what readiness probes look up.
_PROBE_KEY = "0" * 64
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


def _backend_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a storage backend raises when it fails (as opposed to a bug)."""
    found: list[type[BaseException]] = [StorageError, OSError, TimeoutError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        found += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - botocore is a dependency of the s3 plugins only
        pass
    try:
        from pymongo.errors import PyMongoError

        found.append(PyMongoError)
    except ImportError:  # pragma: no cover - likewise for pymongo
        pass
    return tuple(found)


BACKEND_ERRORS = _backend_errors()


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
    refused: int = 0
    bug: int = 0

    def count(self, outcome: str) -> None:
        """Count one outcome here and in the ``thumbor_py_result_storage`` metric."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        metrics.RESULT_STORAGE.labels(outcome=outcome).inc()


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` answers: ready or not, and whether the storage is degraded."""

    ready: bool
    degraded: bool


class GuardedResultStorage:
    """Wraps a result storage with a per-call timeout and a pause after failures.

    A storage outage must never fail a request that could be served: every failure or
    timeout is logged and counted, lookups become misses, writes are dropped, and after a
    failure the storage is not called again for ``pause`` seconds, so a dead backend costs
    one timeout, not one per request. Callers use only this object; it starts and closes
    the storage it wraps.
    """

    def __init__(self, storage: ResultStorage, *, timeout: float, pause: float) -> None:
        self._storage = storage
        self.counters = StorageCounters()
        self._timeout = timeout
        self._pause = pause
        self._paused_until = 0.0
        self._problem: str | None = None

    @property
    def available(self) -> bool:
        """False while paused after a failure."""
        return time.monotonic() >= self._paused_until

    @property
    def degraded(self) -> bool:
        """True from a failure until the storage answers again."""
        return self._problem is not None

    async def start(self) -> None:
        """Start the wrapped storage's clients, if it has any."""
        if isinstance(self._storage, Lifecycle):
            await self._storage.start()

    async def aclose(self) -> None:
        """Close the wrapped storage's clients, if it has any."""
        if isinstance(self._storage, Lifecycle):
            await self._storage.aclose()

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        if not self.available:
            self.counters.count("skipped")
            return False, None
        try:
            async with asyncio.timeout(self._timeout):
                value = await make()
        except StorageKeyError as exc:
            self.counters.count("refused")
            log.warning("result storage %s refused a key: %s", what, exc)
            return False, None
        except BACKEND_ERRORS as exc:
            self._failed(what, exc)
            return False, None
        except Exception:  # not a backend failure: a bug, logged with its traceback
            self._bug(what)
            return False, None
        self._answered()
        return True, value

    def _failed(self, what: str, exc: BaseException) -> None:
        self.counters.count("error")
        self._paused_until = time.monotonic() + self._pause
        self._problem = _one_line(exc, self._timeout)
        metrics.RESULT_STORAGE_DEGRADED.set(1)
        log.warning(
            "result storage %s failed: %s; pausing it for %.0fs", what, self._problem, self._pause
        )

    def _bug(self, what: str) -> None:
        self.counters.count("bug")
        metrics.STORAGE_BUGS.labels(call=what).inc()
        log.exception("result storage %s raised an unexpected error (a bug, not an outage)", what)

    def _answered(self) -> None:
        if self._problem is not None:
            log.warning("result storage answers again (after: %s)", self._problem)
            self._problem = None
            metrics.RESULT_STORAGE_DEGRADED.set(0)

    async def get(self, key: str) -> StoredResult | None:
        """The stored metadata, or None on a miss, a failure, or while paused."""
        ok, result = await self._call("get", lambda: self._storage.get(key))
        if not ok:
            return None
        if result is not None and result.url is not None and not _safe_url(result.url):
            self.counters.count("refused")
            log.warning("result storage get: refused a redirect URL with control characters")
            return None
        self.counters.count("miss" if result is None else "hit")
        return result

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """The stored body, or None (vanished object, failure, or paused)."""
        _, data = await self._call("read", lambda: self._storage.read(key, result))
        return data

    async def put(self, key: str, result: StoredResult, data: bytes) -> bool:
        """Store a variant; False when the write failed or was skipped."""
        with metrics.timed("store"):
            ok, _ = await self._call("put", lambda: self._storage.put(key, result, data))
        self.counters.count("write" if ok else "write_failure")
        return ok

    async def delete(self, key: str) -> bool:
        """Forget one variant; False when that failed or was skipped."""
        ok, _ = await self._call("delete", lambda: self._storage.delete(key))
        return ok

    async def purge(self, source: str) -> int:
        """Delete every stored variant of ``source``; how many.

        Tried even while paused (an operator asked), without the per-call timeout (a source
        may have many variants). A backend failure raises :class:`StorageUnavailableError`
        (503, a reason that names no host or path): purging again finishes the job.
        """
        try:
            count = await self._storage.purge(source)
        except BACKEND_ERRORS as exc:
            self._failed("purge", exc)
            raise StorageUnavailableError(
                "result storage unavailable: the purge did not finish, try again"
            ) from exc
        self._answered()
        return count

    async def check(self) -> str | None:
        """Why the storage is degraded (None when it answers a lookup in time).

        The text is for logs: it may name hosts and paths.
        """
        if self.available:
            bugs = self.counters.bug
            await self._call("check", lambda: self._storage.get(_PROBE_KEY))
            if self.counters.bug > bugs:
                return "the storage raised an unexpected error (see the log)"
        return self._problem

    async def readiness(self, *, required: bool) -> Readiness:
        """Ready while images can be served: a degraded storage makes the server not ready
        only when the operator set ``result_storage.required_for_readiness``.

        Only then is the storage probed (within the call timeout); otherwise the answer is
        immediate, and ``degraded`` is what the last storage call saw.
        """
        if not required:
            return Readiness(ready=True, degraded=self.degraded)
        degraded = await self.check() is not None
        return Readiness(ready=not degraded, degraded=degraded)


async def readiness(storage: GuardedResultStorage | None, *, required: bool) -> Readiness:
    """What ``/readyz`` answers for this (optional) storage."""
    if storage is None:
        return Readiness(ready=True, degraded=False)
    return await storage.readiness(required=required)


def _safe_url(url: str) -> bool:
    return not (_CONTROL & set(url)) and " " not in url


def _one_line(exc: BaseException, timeout: float) -> str:
    """A failure in one short line: backends translate theirs; others keep their first line."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, StorageError):
        return str(exc)
    if type(exc).__module__.startswith("pymongo"):
        return type(exc).__name__  # its text is the driver's whole topology description
    first = (str(exc).strip().splitlines() or [""])[0]
    first = first if len(first) <= 120 else first[:119] + "…"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
