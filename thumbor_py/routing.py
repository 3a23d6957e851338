"""Source routing: pick the loader for a source by its prefix (``s3://``, ``http``, ...).

The routes and their loaders are built by :func:`thumbor_py.assembly.build_loader`.
"""

from __future__ import annotations

from collections.abc import Sequence

from thumbor_py.plugins import Lifecycle, Loader, Source


class RoutingLoader:
    """A loader that hands each source to the first route whose prefix matches it.

    Sources that match no route go to the default loader (``loader:`` in the config). The
    prefix is kept: the chosen loader sees the source exactly as the URL gave it.
    """

    def __init__(self, routes: Sequence[tuple[str, Loader]], default: Loader) -> None:
        self._routes = tuple(routes)
        self._default = default

    def loader_for(self, source: str) -> Loader:
        """The loader that serves ``source``."""
        for prefix, loader in self._routes:
            if source.startswith(prefix):
                return loader
        return self._default

    async def load(self, source: str) -> Source:
        """Load ``source`` with the loader its prefix selects."""
        return await self.loader_for(source).load(source)

    def _loaders(self) -> list[Loader]:
        # Routes may share one loader instance; start and close each once.
        unique: dict[int, Loader] = {}
        for loader in [loader for _, loader in self._routes] + [self._default]:
            unique.setdefault(id(loader), loader)
        return list(unique.values())

    async def start(self) -> None:
        """Start every routed loader that has a lifecycle; on failure close those started."""
        started: list[Lifecycle] = []
        try:
            for loader in self._loaders():
                if isinstance(loader, Lifecycle):
                    await loader.start()
                    started.append(loader)
        except BaseException:
            for lifecycle in reversed(started):
                await lifecycle.aclose()
            raise

    async def aclose(self) -> None:
        """Close every routed loader that has a lifecycle."""
        for loader in reversed(self._loaders()):
            if isinstance(loader, Lifecycle):
                await loader.aclose()
