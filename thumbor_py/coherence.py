"""Cache coherence across workers and replicas: one identity per original, shared purge records.

Every cache of an original (the decoded-source cache of each worker, the result storage) is
checked against one record per original's *identity* (its canonical name, from the loader),
kept in a store every replica shares (:class:`PurgeLog`)::

    {"purged_at": <epoch seconds of the last purge>, "version": <the original's version>}

Rules, applied through :class:`Coherence` (the pipeline's only seam):

- a cached decode or a stored result is used only if its source was loaded (a result: stored)
  after the last purge (:meth:`Coherence.usable`);
- a render whose source was loaded before a purge is not stored (:meth:`Coherence.may_store`,
  read fresh); a stored result is stamped when the store began, so a write that raced a purge
  is older than the purge and is ignored by every later lookup;
- a purge records ``purged_at = now``, waits ``check_interval`` (every process's cached copy
  of the record has expired by then), then deletes the stored results of the identity and of
  the spelling given (:meth:`Coherence.purge`);
- a cached copy older than ``revalidate_after`` is revalidated with the loader (stat, HEAD,
  conditional GET); a changed original is recorded as a purge, so stored results of the old
  version are ignored everywhere too; a failed revalidation keeps the cached copy for at most
  ``revalidate_grace`` seconds after the last successful check.

Each process keeps what it read of a record for ``check_interval``, and past that for as long
as a watermark record (the latest purge time of all) has not moved, so a quiet log costs one
read per process per interval, not one per original in use.

Purge times are wall-clock seconds written by one host and compared on others: replicas must
keep their clocks in sync (NTP); the margin of error is their skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast, runtime_checkable
from urllib.parse import unquote

from thumbor_py import metrics
from thumbor_py.errors import (
    HttpError,
    SourceNotFoundError,
    StorageUnavailableError,
    ThumborPyError,
)
from thumbor_py.plugins import Loader, offers

log = logging.getLogger("thumbor_py.coherence")
K = TypeVar("K")
V = TypeVar("V")

# Per-process memory of records and checks, by identity: bounded, oldest out.
_REMEMBERED = 10_000
# After the purge log fails, answer conservatively without calling it for this long.
_LOG_PAUSE = 2.0
# The record whose purge time is the latest of all: while it has not moved, no identity's
# record has gained a purge, so each process reads it once per check_interval instead of
# one record per original in use.
WATERMARK = "\x00latest-purge"


@dataclass(frozen=True, slots=True)
class PurgeRecord:
    """What the shared store knows of one original."""

    purged_at: float | None = None
    version: str | None = None


class PurgeLogError(ThumborPyError):
    """The purge log's backend failed (implementations translate their errors to this)."""


@runtime_checkable
class PurgeLog(Protocol):
    """One :class:`PurgeRecord` per identity, in a store every replica shares.

    ``read`` returns an empty record for an unknown identity. ``write`` merges: ``purged_at``
    only ever grows (the later of the stored and the given time), ``version`` is replaced
    when given. Failures raise :class:`PurgeLogError`, ``OSError`` or ``TimeoutError``.
    """

    async def read(self, identity: str) -> PurgeRecord:
        """The record of ``identity``."""
        ...

    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        """Merge a purge time and/or a version into the record of ``identity``."""
        ...


@runtime_checkable
class Identifying(Protocol):
    """A loader that names the canonical identity of a source, without I/O."""

    def identity(self, source: str) -> str:
        """Every spelling of one original gives the same string; may raise a 400."""
        ...


@runtime_checkable
class Revalidating(Protocol):
    """A loader that can tell cheaply whether a source still has a version."""

    async def unchanged(self, source: str, version: str) -> bool:
        """False when it changed or is gone; raises an ``HttpError`` when it cannot tell."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CoherenceSettings:
    """How fresh the checks are (seconds; ``revalidate_after`` None: never revalidate)."""

    check_interval: float = 0.5
    revalidate_after: float | None = 60.0
    revalidate_grace: float = 300.0


class MemoryPurgeLog:
    """A purge log for one process (no replicas, one worker): a dict."""

    def __init__(self) -> None:
        self._records: dict[str, PurgeRecord] = {}

    async def read(self, identity: str) -> PurgeRecord:
        """The record of ``identity``."""
        return self._records.get(identity, PurgeRecord())

    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        """Merge into the record of ``identity``."""
        self._records[identity] = merge(self._records.get(identity), purged_at, version)


def merge(old: PurgeRecord | None, purged_at: float | None, version: str | None) -> PurgeRecord:
    """``old`` with the later purge time and the new version (when given)."""
    old = old or PurgeRecord()
    times = [t for t in (old.purged_at, purged_at) if t is not None]
    return PurgeRecord(max(times) if times else None, version or old.version)


class Coherence:
    """What the pipeline asks before it uses a cached copy, stores a result, or purges."""

    def __init__(
        self,
        log: PurgeLog,
        loader: Loader,
        settings: CoherenceSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log
        self._loader = loader
        self._settings = settings or CoherenceSettings()
        self._clock = clock
        # identity -> (confirmed at, record, the watermark it was confirmed against)
        self._records: OrderedDict[str, tuple[float, PurgeRecord, float | None]] = OrderedDict()
        self._watermark: tuple[float, float | None] | None = None
        self._checked: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._checking: dict[tuple[str, str], asyncio.Future[bool | None]] = {}
        self._paused_until = 0.0

    def identity(self, source: str) -> str:
        """The canonical identity of ``source`` (the source itself when the loader has none)."""
        loader = _loader_for(self._loader, source)
        if offers(type(loader), "identity"):
            return cast(Identifying, loader).identity(source)
        return source

    async def usable(
        self, identity: str, source: str, *, loaded_at: float, version: str | None
    ) -> bool:
        """Whether a cached copy of ``identity`` may be used: loaded after the last purge,
        and still the original's version when it is due for revalidation. A decode passes
        its own ``version`` (its ``loaded_at`` is exact); a stored result passes None (its
        ``loaded_at`` is when it was stored): it is checked against the recorded version,
        and revalidated on its first use in this process."""
        record = await self._record(identity, fresh=False)
        if record is None or _purged_since(record, loaded_at):
            return False
        known = version or record.version
        after = self._settings.revalidate_after
        if after is None or known is None:
            return True
        checked = self._checked.get(identity)
        if checked is None:
            if version is not None and self._clock() - loaded_at < after:
                return True
        elif checked[1] == known and time.monotonic() - checked[0] < after:
            return True
        return await self._revalidate(identity, source, known, loaded_at)

    async def current(self, identity: str, loaded_at: float) -> bool:
        """Whether bytes loaded at ``loaded_at`` are still current (no purge since, from
        this process's copy of the record): a request that joined a render started before
        a purge renders again rather than answer with the old original. True when the log
        cannot be read: then no cached copy is usable, so the render loaded its source
        during the outage, and rendering it again would only double the work."""
        record = await self._record(identity, fresh=False)
        return record is None or not _purged_since(record, loaded_at)

    async def may_store(self, identity: str, loaded_at: float, version: str | None) -> bool:
        """Whether a result rendered from bytes loaded at ``loaded_at`` may be stored: no
        purge since (read fresh, not from this process's copy). Records ``version``: another
        than the recorded one means the original changed, and every copy of it loaded
        before ``loaded_at`` (cached decodes, stored results, everywhere) becomes stale."""
        record = await self._record(identity, fresh=True)
        if record is None or _purged_since(record, loaded_at):
            metrics.COHERENCE.labels(outcome="not_stored").inc()
            return False
        if version is not None and version != record.version:
            changed = record.version is not None
            written = await self._write(identity, loaded_at if changed else None, version)
            if changed and not written:
                return False  # the others cannot learn of the change: do not add to it
            if changed:
                metrics.COHERENCE.labels(outcome="changed").inc()
                self._forget(identity)
        return True

    async def purge(self, source: str, delete: Callable[[str], Awaitable[int]] | None) -> int:
        """Purge every spelling of ``source``: record it, wait until every process sees it,
        then ``delete`` the stored results (by identity and by spelling); how many went."""
        names = self._identities(source)
        now = self._clock()
        for identity in names:
            if not await self._write(identity, now, None):
                # The purge log lives with the result storage (auto): the same answer as
                # a purge the storage could not finish.
                raise StorageUnavailableError(
                    "result storage unavailable: the purge did not finish, try again"
                )
            self._forget(identity)
        metrics.COHERENCE.labels(outcome="purge").inc()
        await asyncio.sleep(self._settings.check_interval)
        if delete is None:
            return 0
        counts = [await delete(name) for name in dict.fromkeys((*names, source))]
        return sum(counts)

    def _identities(self, source: str) -> tuple[str, ...]:
        """The identity of ``source`` and, when it still holds ``%xx``, of its decoding (an
        operator may paste either form)."""
        names = [self.identity(source)]
        decoded = unquote(source)
        if decoded != source:
            with contextlib.suppress(HttpError):  # then only the spelling given is a name
                names.append(self.identity(decoded))
        return tuple(dict.fromkeys(names))

    async def _revalidate(self, identity: str, source: str, version: str, loaded_at: float) -> bool:
        loader = _loader_for(self._loader, source)
        if not isinstance(loader, Revalidating):
            return True
        key = (identity, version)
        running = self._checking.get(key)
        if running is None:
            running = asyncio.ensure_future(self._check(loader, identity, source, version))
            self._checking[key] = running
            running.add_done_callback(lambda _: self._checking.pop(key, None))
        fresh = await asyncio.shield(running)
        if fresh is None:  # the check failed: keep the copy for a bounded time
            checked = self._checked.get(identity)
            since = checked[0] if checked else time.monotonic() - (self._clock() - loaded_at)
            return time.monotonic() - since < self._settings.revalidate_grace
        return fresh

    async def _check(
        self, loader: Revalidating, identity: str, source: str, version: str
    ) -> bool | None:
        try:
            unchanged = await loader.unchanged(source, version)
        except SourceNotFoundError:
            unchanged = False
        except HttpError as exc:
            metrics.COHERENCE.labels(outcome="revalidation_failed").inc()
            log.warning("cannot revalidate %s: %s", identity, exc.reason)
            return None
        if unchanged:
            metrics.COHERENCE.labels(outcome="revalidated").inc()
            self._remember_check(identity, version)
            return True
        metrics.COHERENCE.labels(outcome="changed").inc()
        await self._write(identity, self._clock(), None)
        self._forget(identity)
        return False

    async def _record(self, identity: str, *, fresh: bool) -> PurgeRecord | None:
        """The record of ``identity``: this process's copy while it is younger than
        ``check_interval``, or while no purge was recorded anywhere since it was read (and
        it has a version); None when the log cannot be read (callers then play safe)."""
        now = time.monotonic()
        cached = self._records.get(identity)
        if not fresh and cached is not None and now - cached[0] < self._settings.check_interval:
            return cached[1]
        if now < self._paused_until:
            return None
        try:
            confirmed, latest = await self._latest_purge()
            # A first version is recorded without a purge: re-read records that had none.
            if not fresh and cached and latest == cached[2] and cached[1].version is not None:
                _remember(self._records, identity, (confirmed, cached[1], latest))
                return cached[1]
            record = await self._log.read(identity)
        except (PurgeLogError, OSError, TimeoutError) as exc:
            self._failed("read", exc)
            return None
        # Stamped when the watermark read began: older than the record read, so safe.
        _remember(self._records, identity, (confirmed, record, latest))
        return record

    async def _latest_purge(self) -> tuple[float, float | None]:
        """(when it was read, the latest purge time anywhere), read once per interval."""
        now = time.monotonic()
        cached = self._watermark
        if cached is not None and now - cached[0] < self._settings.check_interval:
            return cached
        self._watermark = (now, (await self._log.read(WATERMARK)).purged_at)
        return self._watermark

    async def _write(self, identity: str, purged_at: float | None, version: str | None) -> bool:
        """Merge into the record (a purge moves the watermark too, after the record);
        False (logged, counted) when the log failed."""
        try:
            await self._log.write(identity, purged_at=purged_at, version=version)
            if purged_at is not None:
                await self._log.write(WATERMARK, purged_at=purged_at)
        except (PurgeLogError, OSError, TimeoutError) as exc:
            self._failed("write", exc)
            return False
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        metrics.COHERENCE.labels(outcome="log_error").inc()
        self._paused_until = time.monotonic() + _LOG_PAUSE
        log.warning("purge log %s failed (%s: %s)", what, type(exc).__name__, exc)

    def _remember_check(self, identity: str, version: str) -> None:
        _remember(self._checked, identity, (time.monotonic(), version))

    def _forget(self, identity: str) -> None:
        self._watermark = None
        self._records.pop(identity, None)
        self._checked.pop(identity, None)


def _purged_since(record: PurgeRecord, loaded_at: float) -> bool:
    return record.purged_at is not None and loaded_at < record.purged_at


def _remember(table: OrderedDict[K, V], key: K, value: V) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > _REMEMBERED:
        table.popitem(last=False)


def _loader_for(loader: Loader, source: str) -> object:
    """The loader that serves ``source`` (a router picks one by prefix)."""
    route: Callable[[str], Loader] | None = getattr(loader, "loader_for", None)
    return route(source) if route is not None else loader
