"""The original an image request renders from, as a :class:`PixelSource`.

Sources are decoded once for many sizes: :class:`PixelSources` looks a source up in the
master cache (:mod:`thumbor_py.imaging.master`) by the original's identity; on a miss one
load and one decode serve every concurrent render of that source (a single flight keyed by
identity), and the decoded master is kept for the next sizes. With several workers, the
workers share masters too (:mod:`thumbor_py.sibling_masters`): one decode per source for the
whole server. A loader with a blocking read (the file loader) is read on the render thread,
in the same job as the decode (:mod:`thumbor_py.thread_reads`).

A cached master, or one a sibling decoded, is used only while :meth:`Coherence.usable`
(loaded after the original's last purge, and still its version); a stale one is dropped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TypeVar

from thumbor_py import metrics
from thumbor_py.coherence import Coherence
from thumbor_py.errors import HttpError
from thumbor_py.imaging.master import MasterCache, PixelSource
from thumbor_py.imaging.transform import Renderer
from thumbor_py.plugins import Loader, Source
from thumbor_py.render_jobs import Admitted
from thumbor_py.shared_masters import SharedMasters
from thumbor_py.sibling_masters import shared_or_decoded
from thumbor_py.singleflight import SingleFlight
from thumbor_py.thread_reads import blocking_read, read_then

T = TypeVar("T")


class PixelSources:
    """Loads originals through ``loader`` and, with ``masters``, decodes each once."""

    def __init__(
        self,
        loader: Loader,
        renderer: Renderer,
        coherence: Coherence,
        *,
        masters: MasterCache | None = None,
        shared: SharedMasters | None = None,
        io_executor: Executor | None = None,
    ) -> None:
        self._loader = loader
        self._renderer = renderer
        self._coherence = coherence
        self._masters = masters
        self._shared = shared if masters is not None else None
        self._io = io_executor
        self._sources: SingleFlight[str, PixelSource] = SingleFlight()

    @property
    def caches(self) -> bool:
        """Whether decoded masters are kept (a master cache was given)."""
        return self._masters is not None

    async def get(self, name: str, job: Admitted, *, decode: bool) -> PixelSource:
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
        return await self._sources.run(identity, lambda: self._decode_source(identity, name, job))

    async def load(self, source: str) -> Source:
        """The bytes of ``source`` through the loader, timed; its refusals counted."""
        try:
            with metrics.timed("load"):
                return await self._loader.load(source)
        except HttpError as exc:
            metrics.LOADER_ERRORS.labels(kind=type(exc).__name__).inc()
            raise

    def reader(self, name: str) -> Callable[[], Source] | None:
        """A blocking read of ``name`` for a render thread, when its loader offers one."""
        return blocking_read(self._loader, name)

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
        loaded = await self.load(name)
        return PixelSource(identity, loaded.data, loaded_at=loaded_at, version=loaded.version)

    async def _decode_source(self, identity: str, name: str, job: Admitted) -> PixelSource:
        assert self._masters is not None
        if self._shared is None:
            source = await self._decoded(identity, name, job, self._with_master)
        else:
            source = await self._from_siblings(self._shared, identity, name, job)
        evicted = self._masters.evictions
        if self._masters.put(source):
            metrics.MASTER_CACHE.labels(outcome="store").inc()
            if self._masters.evictions > evicted:
                metrics.MASTER_CACHE.labels(outcome="evict").inc(self._masters.evictions - evicted)
            metrics.MASTER_CACHE_BYTES.set(self._masters.nbytes)
        return source

    async def _decoded(
        self, identity: str, name: str, job: Admitted, decode: Callable[[PixelSource], T]
    ) -> T:
        """``name`` loaded, then ``decode`` (with its master) on a render thread."""
        read = self.reader(name)
        if read is None:
            loaded = await self._fetch(identity, name)
            return await job.run(functools.partial(decode, loaded), stage="decode")
        read_and_decode = functools.partial(read_then, identity, read, decode, "decode")
        return await job.run(read_and_decode, stage=None)  # one thread job

    async def _from_siblings(
        self, shared: SharedMasters, identity: str, name: str, job: Admitted
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
            return self._decoded(identity, name, job, decode)

        with metrics.timed("shared_wait"):  # the whole look-up, waiting included
            return await shared_or_decoded(
                shared, identity, self._renderer, io=self._io, usable=usable, decode=decode_here
            )

    def _with_master(self, source: PixelSource) -> PixelSource:
        return self._renderer.with_master(source)
