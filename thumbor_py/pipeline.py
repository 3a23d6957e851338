"""Async orchestration of one image request: lookup, single flight, load, render, store.

Admission: each process admits at most ``max_pending`` renders (loading, queued or
rendering); one more is refused at once with 503 and ``Retry-After`` rather than queued.
A slot is freed when its request is answered *and* every render-thread job it started has
finished, so a request answered 503 at its deadline does not free a thread still busy.
Every admitted render has a deadline (``server.request_timeout``): past it the request is
answered 503, and a render still waiting for a thread is dropped before it starts.

Requests with one result key share one render, and its leader alone stores the result.
Sources are decoded once for many sizes: the pipeline looks the source up in the master
cache (:mod:`thumbor_py.imaging.master`), by the original's identity; on a miss one load and
one decode serve every concurrent render of that source, and the decoded master is kept for
the next sizes. With several workers, the workers share masters too
(:mod:`thumbor_py.sibling_masters`): one decode per source for the whole server. A loader
with a blocking read (the file loader) is read on the render thread, in the same job as the
decode or render (:mod:`thumbor_py.thread_reads`).

Cache coherence (:mod:`thumbor_py.coherence`) is asked at four points: a stored result and a
cached master are used only while :meth:`Coherence.usable`; a request whose shared render
read an original purged since renders once more (:meth:`Coherence.current`); the leader
stores only if :meth:`Coherence.may_store`, asked right before the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from thumbor_py import metrics
from thumbor_py.coherence import Coherence, MemoryPurgeLog
from thumbor_py.errors import HttpError, OverloadedError
from thumbor_py.etags import etag_matches
from thumbor_py.imaging import formats
from thumbor_py.imaging.master import MasterCache, PixelSource
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.transform import Renderer, Sources
from thumbor_py.plugins import Loader, Source, StoredResult
from thumbor_py.results import GuardedResultStorage, result_key
from thumbor_py.shared_masters import SharedMasters
from thumbor_py.sibling_masters import shared_or_decoded
from thumbor_py.singleflight import SingleFlight
from thumbor_py.thread_reads import blocking_read, read_then
from thumbor_py.url import ImageRequest

log = logging.getLogger("thumbor_py.pipeline")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What to answer: a body, a redirect to a stored copy, or 304 Not Modified."""

    content_type: str
    etag: str
    max_age: int | None
    data: bytes | None = None
    redirect: str | None = None
    not_modified: bool = False
    from_storage: bool = False
    # More than one frame (known after a render; a storage hit does not record it).
    animated: bool = False


@dataclass(frozen=True, slots=True)
class _Flight:
    """A shared render and what coherence needs of its source: the original's identity,
    when its bytes were loaded (epoch seconds, taken before the load) and its version."""

    rendered: Rendered
    identity: str
    loaded_at: float
    version: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoragePolicy:
    """When and for how long results are stored."""

    store_unsafe: bool = False
    expires_after: int = 0


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


class Pipeline:
    """Serves a request from result storage, or loads and renders it exactly once."""

    def __init__(
        self,
        *,
        loader: Loader,
        renderer: Renderer,
        executor: Executor,
        max_pending: int,
        storage: GuardedResultStorage | None = None,
        policy: StoragePolicy | None = None,
        deadline: float | None = None,
        masters: MasterCache | None = None,
        coherence: Coherence | None = None,
        shared: SharedMasters | None = None,
        io_executor: Executor | None = None,
    ) -> None:
        self._loader = loader
        self._coherence = coherence or Coherence(MemoryPurgeLog(), loader)
        self._deadline = deadline
        self._renderer = renderer
        self._executor = executor
        self._max_pending = max_pending
        self._storage = storage
        self._policy = policy or StoragePolicy()
        self._masters = masters
        self._shared = shared if masters is not None else None
        self._io = io_executor
        self._pending = 0
        self._renders: SingleFlight[str, _Flight] = SingleFlight()
        self._sources: SingleFlight[str, PixelSource] = SingleFlight()
        self._writes: set[asyncio.Task[bool]] = set()

    @property
    def pending(self) -> int:
        """Renders admitted and not yet finished (loading, queued or rendering)."""
        return self._pending

    async def process(
        self,
        request: ImageRequest,
        *,
        signed_path: str,
        format_class: str = "default",
        if_none_match: str | None = None,
    ) -> Outcome:
        """Answer ``request``; raise an ``HttpError`` subclass on any refusal."""
        formats.SOURCE_FOR_LOGS.set(request.image)  # named in render-thread warnings
        self._renderer.check_request(request)
        key = result_key(signed_path, format_class)
        storage = self._storage if self._storable(request) else None
        if storage is not None:
            stored = await self._from_storage(storage, key, if_none_match, request.source)
            if stored is not None:
                return stored

        async def leader() -> _Flight:
            flight = await self._render(request, format_class)
            if storage is not None and flight.rendered.cacheable:
                self._store_later(storage, key, signed_path, flight)
            return flight

        flight = await self._renders.run(key, leader)
        if not await self._coherence.current(flight.identity, flight.loaded_at):
            flight = await self._renders.run(key, leader)  # joined a render of a purged original
        rendered = flight.rendered
        return Outcome(
            content_type=rendered.content_type,
            etag=rendered.etag,
            max_age=rendered.max_age,
            data=rendered.data,
            not_modified=etag_matches(if_none_match, rendered.etag),
            animated=rendered.frames > 1,
        )

    def _storable(self, request: ImageRequest) -> bool:
        return self._storage is not None and (not request.unsafe or self._policy.store_unsafe)

    async def _from_storage(
        self, storage: GuardedResultStorage, key: str, if_none_match: str | None, source: str
    ) -> Outcome | None:
        """A hit answered without decoding anything; 304 and redirects read no body."""
        with metrics.timed("storage_hit"):
            return await self._lookup(storage, key, if_none_match, source)

    async def _lookup(
        self, storage: GuardedResultStorage, key: str, if_none_match: str | None, source: str
    ) -> Outcome | None:
        hit = await storage.get(key)
        if hit is None or not await self._coherence.usable(
            self._coherence.identity(source),
            source,
            loaded_at=hit.created_at.timestamp(),  # stamped before the write was allowed
            version=None,
        ):
            return None
        outcome = Outcome(
            content_type=hit.content_type,
            etag=hit.etag,
            max_age=hit.max_age,
            from_storage=True,
            redirect=hit.url,
        )
        if etag_matches(if_none_match, hit.etag):
            return dataclasses.replace(outcome, not_modified=True)
        if hit.url is not None:
            return outcome
        data = await storage.read(key, hit)
        return None if data is None else dataclasses.replace(outcome, data=data)

    async def _render(self, request: ImageRequest, format_class: str) -> _Flight:
        if self._pending >= self._max_pending:
            raise OverloadedError("render queue is full, retry later")
        self._pending += 1
        slot = _Slot(self._free_slot)
        deadline = None if self._deadline is None else time.monotonic() + self._deadline
        scope = asyncio.timeout(self._deadline)
        try:
            async with scope:
                return await self._load_and_render(request, format_class, slot, deadline)
        except TimeoutError:
            if not scope.expired():
                raise
            raise OverloadedError(f"no answer within {self._deadline:g} s, retry later") from None
        finally:
            slot.done()

    def _free_slot(self) -> None:
        self._pending -= 1

    async def _load_and_render(
        self, request: ImageRequest, format_class: str, slot: _Slot, deadline: float | None
    ) -> _Flight:
        # The image and what its filters name (watermark, frame) load together, through
        # the same loader and so the same source rules.
        wanted = self._renderer.sources(request)
        read = None if wanted.resources or self._masters is not None else self._reader(wanted.image)
        if read is not None:
            return await self._read_and_render(
                wanted.image, read, request, format_class, slot, deadline
            )
        source, extra = await asyncio.gather(
            self._pixel_source(wanted.image, slot, deadline, decode=not request.meta),
            asyncio.gather(*(self._load(url) for url in wanted.resources)),
        )
        job = functools.partial(
            self._renderer.render,
            source,
            request,
            format_class,
            resources=_resources(wanted, extra),
            deadline=deadline,
        )
        rendered = await self._execute(job, slot, deadline)
        return _Flight(rendered, source.identity, source.loaded_at, source.version)

    async def _read_and_render(
        self,
        name: str,
        read: Callable[[], Source],
        request: ImageRequest,
        format_class: str,
        slot: _Slot,
        deadline: float | None,
    ) -> _Flight:
        """One thread job reads the source and renders it (no master cache to fill)."""

        def render(source: PixelSource) -> _Flight:
            rendered = self._renderer.render(
                source, request, format_class, resources={}, deadline=deadline
            )
            return _Flight(rendered, source.identity, source.loaded_at, source.version)

        identity = self._coherence.identity(name)
        job = functools.partial(read_then, identity, read, render, "render")
        return await self._execute(job, slot, deadline, stage=None)

    async def _pixel_source(
        self, name: str, slot: _Slot, deadline: float | None, *, decode: bool
    ) -> PixelSource:
        """The source ``name`` to render from: its cached master (while coherence finds it
        usable), or (on a miss) its bytes, loaded and decoded once for every render that
        wants it now. Without ``decode`` (``meta/`` reads the header only) a miss loads the
        bytes alone."""
        identity = self._coherence.identity(name)
        cached = await self._cached(identity, name)
        if self._masters is None or (cached is None and not decode):
            return await self._fetch(identity, name)
        shared = cached is not None or self._sources.running(identity)
        metrics.MASTER_CACHE.labels(outcome="hit" if shared else "miss").inc()
        if cached is not None:
            return cached
        return await self._sources.run(
            identity, lambda: self._decode_source(identity, name, slot, deadline)
        )

    async def _cached(self, identity: str, name: str) -> PixelSource | None:
        """The cached source ``identity`` if coherence finds it usable (loaded after the
        last purge, and still the original's version); a stale one is dropped."""
        cached = self._masters.get(identity) if self._masters is not None else None
        if cached is None:
            return None
        masters, coherence = self._masters, self._coherence
        if await coherence.usable(
            identity, name, loaded_at=cached.loaded_at, version=cached.version
        ):
            return cached
        assert masters is not None
        masters.discard(cached)
        metrics.MASTER_CACHE_BYTES.set(masters.nbytes)
        return None

    async def _fetch(self, identity: str, name: str) -> PixelSource:
        """The bytes of ``name``, stamped with the time before the load (a purge during it
        makes them stale) and the original's version."""
        loaded_at = time.time()
        loaded = await self._load(name)
        return PixelSource(identity, loaded.data, loaded_at=loaded_at, version=loaded.version)

    async def _decode_source(
        self, identity: str, name: str, slot: _Slot, deadline: float | None
    ) -> PixelSource:
        assert self._masters is not None
        if self._shared is None:
            source = await self._decoded(identity, name, slot, deadline, self._with_master)
        else:
            source = await self._from_siblings(self._shared, identity, name, slot, deadline)
        evicted = self._masters.evictions
        if self._masters.put(source):
            metrics.MASTER_CACHE.labels(outcome="store").inc()
            if self._masters.evictions > evicted:
                metrics.MASTER_CACHE.labels(outcome="evict").inc(self._masters.evictions - evicted)
            metrics.MASTER_CACHE_BYTES.set(self._masters.nbytes)
        return source

    async def _decoded(
        self,
        identity: str,
        name: str,
        slot: _Slot,
        deadline: float | None,
        decode: Callable[[PixelSource], T],
    ) -> T:
        """``name`` loaded, then ``decode`` (with its master) on a render thread."""
        read = self._reader(name)
        if read is None:
            loaded = await self._fetch(identity, name)
            job = functools.partial(decode, loaded)
            return await self._execute(job, slot, deadline, stage="decode")
        job = functools.partial(read_then, identity, read, decode, "decode")  # one thread job
        return await self._execute(job, slot, deadline, stage=None)

    async def _from_siblings(
        self, shared: SharedMasters, identity: str, name: str, slot: _Slot, deadline: float | None
    ) -> PixelSource:
        """The master a sibling worker decoded, or this worker's decode, shared with them
        (:func:`thumbor_py.sibling_masters.shared_or_decoded`)."""

        async def usable(found: PixelSource) -> bool:
            return await self._coherence.usable(
                identity, name, loaded_at=found.loaded_at, version=found.version
            )

        def decode_here(
            decode: Callable[[PixelSource], PixelSource | None],
        ) -> Awaitable[PixelSource | None]:
            return self._decoded(identity, name, slot, deadline, decode)

        with metrics.timed("shared_wait"):  # the whole look-up, waiting included
            return await shared_or_decoded(
                shared, identity, self._renderer, io=self._io, usable=usable, decode=decode_here
            )

    def _with_master(self, source: PixelSource) -> PixelSource:
        return self._renderer.with_master(source)

    async def _execute(
        self,
        job: Callable[[], T],
        slot: _Slot,
        deadline: float | None,
        *,
        stage: str | None = "render",
    ) -> T:
        """Run ``job`` on a render thread, timed as ``stage`` (``None``: the job times its
        own steps); if this request is cancelled (its deadline passed) while the job still
        waits for a thread, the job is dropped and never starts. The job holds ``slot``
        until it has finished (or was dropped)."""
        metrics.QUEUE_DEPTH.inc()
        run = functools.partial(_in_thread, time.perf_counter(), deadline, job, stage)
        future = self._executor.submit(contextvars.copy_context().run, run)
        if slot.hold():
            loop = asyncio.get_running_loop()
            future.add_done_callback(functools.partial(_on_loop, loop, slot.done))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancel():
                metrics.QUEUE_DEPTH.dec()
            raise

    def _reader(self, name: str) -> Callable[[], Source] | None:
        """A blocking read of ``name`` for a render thread, when its loader offers one."""
        return blocking_read(self._loader, name)

    async def _load(self, source: str) -> Source:
        try:
            with metrics.timed("load"):
                return await self._loader.load(source)
        except HttpError as exc:
            metrics.LOADER_ERRORS.labels(kind=type(exc).__name__).inc()
            raise

    def _store_later(
        self,
        storage: GuardedResultStorage,
        key: str,
        signed_path: str,
        flight: _Flight,
    ) -> None:
        now = datetime.now(UTC)  # before may_store: a write that raced a purge is older
        expires, rendered = self._policy.expires_after, flight.rendered
        result = StoredResult(
            path=signed_path,
            source=flight.identity,
            content_type=rendered.content_type,
            etag=rendered.etag,
            size=len(rendered.data),
            width=rendered.width,
            height=rendered.height,
            created_at=now,
            expires_at=now + timedelta(seconds=expires) if expires > 0 else None,
            max_age=rendered.max_age,
        )
        store = self._store(storage, key, result, flight)
        task = asyncio.get_running_loop().create_task(store)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store(
        self, storage: GuardedResultStorage, key: str, result: StoredResult, flight: _Flight
    ) -> bool:
        """Write the result unless its original was purged (or changed) since it was loaded."""
        if not await self._coherence.may_store(flight.identity, flight.loaded_at, flight.version):
            return False
        return await storage.put(key, result, flight.rendered.data)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for pending writes; return how many were left."""
        if not self._writes:
            return 0
        _, pending = await asyncio.wait(set(self._writes), timeout=grace)
        if pending:
            log.warning("%d result-storage writes still pending at shutdown", len(pending))
        return len(pending)


def _resources(wanted: Sources, sources: list[Source]) -> dict[str, bytes]:
    return {url: source.data for url, source in zip(wanted.resources, sources, strict=True)}


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None], _: Future[T]) -> None:
    """A thread job's done callback: run ``callback`` on the event loop."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits any more
        loop.call_soon_threadsafe(callback)


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
