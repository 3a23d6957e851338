"""Async orchestration of one image request: lookup, single flight, render, store.

Requests with one result key share one render (a single flight), and its leader alone
stores the result. The leader is admitted to the render threads
(:mod:`thumbor_py.render_jobs`: at most ``max_pending`` renders, each with a deadline) and
gets its original as a :class:`PixelSource` (:mod:`thumbor_py.pixel_sources`: the master
cache, one load and decode per source, the masters shared by the workers). Without a master
cache, a loader with a blocking read (the file loader) is read on the render thread, in the
same job as the render (:mod:`thumbor_py.thread_reads`).

Cache coherence (:mod:`thumbor_py.coherence`) is asked at four points: a stored result and a
cached master are used only while :meth:`Coherence.usable`; a request whose shared render
read an original purged since renders once more (:meth:`Coherence.current`); the leader
stores only if :meth:`Coherence.may_store`, asked right before the write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from thumbor_py import metrics
from thumbor_py.coherence import Coherence, MemoryPurgeLog
from thumbor_py.etags import etag_matches
from thumbor_py.imaging import formats
from thumbor_py.imaging.master import MasterCache, PixelSource
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.transform import Renderer, Sources
from thumbor_py.pixel_sources import PixelSources
from thumbor_py.plugins import Loader, Source, StoredResult
from thumbor_py.render_jobs import Admitted, RenderJobs
from thumbor_py.results import GuardedResultStorage, result_key
from thumbor_py.shared_masters import SharedMasters
from thumbor_py.singleflight import SingleFlight
from thumbor_py.thread_reads import read_then
from thumbor_py.url import ImageRequest

log = logging.getLogger("thumbor_py.pipeline")


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
        coherence = coherence or Coherence(MemoryPurgeLog(), loader)
        self._coherence = coherence
        self._renderer = renderer
        self._jobs = RenderJobs(executor, max_pending=max_pending, deadline=deadline)
        self._sources = PixelSources(
            loader, renderer, coherence, masters=masters, shared=shared, io_executor=io_executor
        )
        self._storage = storage
        self._policy = policy or StoragePolicy()
        self._renders: SingleFlight[str, _Flight] = SingleFlight()
        self._writes: set[asyncio.Task[bool]] = set()

    @property
    def pending(self) -> int:
        """Renders admitted and not yet finished (loading, queued or rendering)."""
        return self._jobs.pending

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
        return await self._jobs.admit(
            functools.partial(self._load_and_render, request, format_class)
        )

    async def _load_and_render(
        self, request: ImageRequest, format_class: str, job: Admitted
    ) -> _Flight:
        # The image and what its filters name (watermark, frame) load together, through
        # the same loader and so the same source rules.
        wanted = self._renderer.sources(request)
        sources = self._sources
        read = None if wanted.resources or sources.caches else sources.reader(wanted.image)
        if read is not None:
            return await self._read_and_render(wanted.image, read, request, format_class, job)
        source, extra = await asyncio.gather(
            sources.get(wanted.image, job, decode=not request.meta),
            asyncio.gather(*(sources.load(url) for url in wanted.resources)),
        )
        render = functools.partial(
            self._renderer.render,
            source,
            request,
            format_class,
            resources=_resources(wanted, extra),
            deadline=job.deadline,
        )
        rendered = await job.run(render)
        return _Flight(rendered, source.identity, source.loaded_at, source.version)

    async def _read_and_render(
        self,
        name: str,
        read: Callable[[], Source],
        request: ImageRequest,
        format_class: str,
        job: Admitted,
    ) -> _Flight:
        """One thread job reads the source and renders it (no master cache to fill)."""

        def render(source: PixelSource) -> _Flight:
            rendered = self._renderer.render(
                source, request, format_class, resources={}, deadline=job.deadline
            )
            return _Flight(rendered, source.identity, source.loaded_at, source.version)

        identity = self._coherence.identity(name)
        read_and_render = functools.partial(read_then, identity, read, render, "render")
        return await job.run(read_and_render, stage=None)

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
