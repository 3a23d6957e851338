"""Async orchestration of one image request: lookup, single flight, load, render, store.

Admission: each process admits at most ``max_pending`` renders (loading, queued or
rendering); one more is refused at once with 503 and ``Retry-After`` rather than queued.
Every admitted render has a deadline (``server.request_timeout``): past it the request is
answered 503, and a render still waiting for a thread is dropped before it starts.
Sources are decoded once for many sizes: a render first looks for a master of its source
(:mod:`thumbor_py.imaging.master`), and concurrent renders of one source wait for the
first one's master instead of fetching and decoding the source again.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from thumbor_py import metrics
from thumbor_py.coherence import Coherence, MemoryPurgeLog
from thumbor_py.errors import HttpError, OverloadedError
from thumbor_py.imaging.master import SOURCE_STAMP, Master, SourceStamp
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.transform import Renderer, Sources
from thumbor_py.plugins import Loader, Source, StoredResult
from thumbor_py.results import GuardedResultStorage, etag_matches, result_key
from thumbor_py.url import ImageRequest

log = logging.getLogger("thumbor_py.pipeline")
T = TypeVar("T")
# A render, when its source bytes were loaded (epoch seconds) and their version.
Loaded = tuple[Rendered, float, str | None]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class StoragePolicy:
    """When and for how long results are stored."""

    store_unsafe: bool = False
    expires_after: int = 0


class SingleFlight(Generic[T]):
    """Concurrent calls with the same key share one execution and its result (or error)."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    async def run(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        """Await the running call for ``key``, or start one."""
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # followers re-raise it; mark it retrieved for the leader
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]


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
        coherence: Coherence | None = None,
    ) -> None:
        self._loader = loader
        self._coherence = coherence or Coherence(MemoryPurgeLog(), loader)
        self._deadline = deadline
        self._renderer = renderer
        self._executor = executor
        self._max_pending = max_pending
        self._storage = storage
        self._policy = policy or StoragePolicy()
        self._pending = 0
        self._flights: SingleFlight[Loaded] = SingleFlight()
        self._writes: set[asyncio.Task[bool]] = set()
        # Sources being decoded now, by master key: later renders wait for their master.
        self._decoding: dict[str, asyncio.Future[None]] = {}

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
        self._renderer.check_request(request)
        key = result_key(signed_path, format_class)
        identity = self._coherence.identity(request.source)
        storage = self._storage if self._storable(request) else None
        if storage is not None:
            stored = await self._from_storage(storage, key, if_none_match, request.source)
            if stored is not None:
                return stored
        flight = functools.partial(
            self._flights.run, key, lambda: self._render(request, format_class)
        )
        rendered, loaded_at, version = await flight()
        if not await self._coherence.current(identity, loaded_at):  # purged while rendering
            rendered, loaded_at, version = await flight()
        etag = rendered.etag
        if storage is not None and rendered.cacheable:
            self._store_later(
                storage, key, signed_path, (identity, loaded_at, version), rendered, etag
            )
        return Outcome(
            content_type=rendered.content_type,
            etag=etag,
            max_age=rendered.max_age,
            data=rendered.data,
            not_modified=etag_matches(if_none_match, etag),
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
            loaded_at=hit.created_at.timestamp(),
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

    async def _render(self, request: ImageRequest, format_class: str) -> Loaded:
        if self._pending >= self._max_pending:
            raise OverloadedError("render queue is full, retry later")
        self._pending += 1
        deadline = None if self._deadline is None else time.monotonic() + self._deadline
        scope = asyncio.timeout(self._deadline)
        try:
            async with scope:
                return await self._load_and_render(request, format_class, deadline)
        except TimeoutError:
            if not scope.expired():
                raise
            raise OverloadedError(f"no answer within {self._deadline:g} s, retry later") from None
        finally:
            self._pending -= 1

    async def _load_and_render(
        self, request: ImageRequest, format_class: str, deadline: float | None
    ) -> Loaded:
        wanted = self._renderer.sources(request)
        identity = self._coherence.identity(wanted.image)
        async with self._master_of(identity) as master:
            if master is not None and await self._coherence.usable(
                identity, wanted.image, loaded_at=master.loaded_at, version=master.version
            ):
                rendered = await self._from_master(master, wanted, request, format_class, deadline)
                if rendered is not None:
                    return rendered, master.loaded_at, master.version
            elif master is not None and self._renderer.masters is not None:
                self._renderer.masters.discard(identity)
            return await self._from_source(identity, wanted, request, format_class, deadline)

    async def _from_master(
        self,
        master: Master,
        wanted: Sources,
        request: ImageRequest,
        format_class: str,
        deadline: float | None,
    ) -> Rendered | None:
        """A render from the cached master: no fetch, no decode; None when it cannot serve."""
        extra = await asyncio.gather(*(self._load(url) for url in wanted.resources))
        job = functools.partial(
            self._renderer.render_master,
            master,
            request,
            format_class,
            resources=_resources(wanted.resources, extra),
        )
        return await self._execute(job, deadline)

    async def _from_source(
        self,
        identity: str,
        wanted: Sources,
        request: ImageRequest,
        format_class: str,
        deadline: float | None,
    ) -> Loaded:
        # The image and what its filters name (watermark, frame) load together, through
        # the same loader and so the same source rules.
        loaded_at = time.time()  # before the load: a purge during it makes these bytes stale
        main, *extra = await asyncio.gather(
            self._load(wanted.image), *(self._load(url) for url in wanted.resources)
        )
        job: Callable[[], Rendered | None] = functools.partial(
            self._renderer.render,
            main.data,
            request,
            format_class,
            resources=_resources(wanted.resources, extra),
            master_key=identity if self._renderer.masters is not None else None,
        )
        token = SOURCE_STAMP.set(SourceStamp(loaded_at, main.version))  # a master keeps it
        try:
            rendered = await self._execute(job, deadline)
        finally:
            SOURCE_STAMP.reset(token)
        assert rendered is not None  # only render_master answers None
        return rendered, loaded_at, main.version

    @asynccontextmanager
    async def _master_of(self, key: str) -> AsyncIterator[Master | None]:
        """The cached master of ``key``. While none is cached, the first caller decodes the
        source (keeping a master when it can) and concurrent callers wait for it first."""
        masters = self._renderer.masters
        if masters is None:
            yield None
            return
        decoding = self._decoding.get(key)
        if decoding is not None:
            await asyncio.shield(decoding)
            yield masters.get(key)
            return
        master = masters.get(key)
        if master is not None:
            yield master
            return
        done = asyncio.get_running_loop().create_future()
        self._decoding[key] = done
        try:
            yield None
        finally:
            del self._decoding[key]
            done.set_result(None)

    async def _execute(
        self, job: Callable[[], Rendered | None], deadline: float | None
    ) -> Rendered | None:
        """Run ``job`` on a render thread; if this request is cancelled (its deadline passed)
        while the job still waits for a thread, the job is dropped and never starts."""
        metrics.QUEUE_DEPTH.inc()
        run = functools.partial(self._render_in_thread, time.perf_counter(), deadline, job)
        future = self._executor.submit(contextvars.copy_context().run, run)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancel():
                metrics.QUEUE_DEPTH.dec()
            raise

    async def _load(self, source: str) -> Source:
        try:
            with metrics.timed("load"):
                return await self._loader.load(source)
        except HttpError as exc:
            metrics.LOADER_ERRORS.labels(kind=type(exc).__name__).inc()
            raise

    @staticmethod
    def _render_in_thread(
        queued_at: float, deadline: float | None, job: Callable[[], Rendered | None]
    ) -> Rendered | None:
        metrics.QUEUE_DEPTH.dec()
        metrics.STAGE_SECONDS.labels(stage="queue_wait").observe(time.perf_counter() - queued_at)
        if deadline is not None and time.monotonic() > deadline:
            # Nobody waits for this answer any more; do not spend a CPU on it.
            raise OverloadedError("the request's deadline passed while it was queued")
        metrics.IN_FLIGHT.inc()
        try:
            with metrics.timed("render"):
                return job()
        finally:
            metrics.IN_FLIGHT.dec()

    def _store_later(
        self,
        storage: GuardedResultStorage,
        key: str,
        signed_path: str,
        loaded: tuple[str, float, str | None],
        rendered: Rendered,
        etag: str,
    ) -> None:
        now = datetime.now(UTC)  # before may_store: a write that raced a purge is older than it
        identity, loaded_at, version = loaded
        expires = self._policy.expires_after
        result = StoredResult(
            path=signed_path,
            source=identity,
            content_type=rendered.content_type,
            etag=etag,
            size=len(rendered.data),
            width=rendered.width,
            height=rendered.height,
            created_at=now,
            expires_at=now + timedelta(seconds=expires) if expires > 0 else None,
            max_age=rendered.max_age,
        )
        task = asyncio.get_running_loop().create_task(
            self._store(storage, key, result, rendered.data, loaded_at, version)
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store(
        self,
        storage: GuardedResultStorage,
        key: str,
        result: StoredResult,
        data: bytes,
        loaded_at: float,
        version: str | None,
    ) -> bool:
        if not await self._coherence.may_store(result.source, loaded_at, version):
            return False
        return await storage.put(key, result, data)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for pending writes; return how many were left."""
        if not self._writes:
            return 0
        _, pending = await asyncio.wait(set(self._writes), timeout=grace)
        if pending:
            log.warning("%d result-storage writes still pending at shutdown", len(pending))
        return len(pending)


def _resources(urls: tuple[str, ...], sources: list[Source]) -> dict[str, bytes]:
    return {url: source.data for url, source in zip(urls, sources, strict=True)}
