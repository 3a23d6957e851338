"""Async orchestration of one image request: admit, load, render off the loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from thumbor_py.errors import OverloadedError
from thumbor_py.imaging.transform import Rendered, Renderer
from thumbor_py.plugins import Loader
from thumbor_py.url import ImageRequest


class Pipeline:
    """Loads a source and renders it in the executor, refusing work past the queue bound."""

    def __init__(
        self,
        *,
        loader: Loader,
        renderer: Renderer,
        executor: Executor,
        max_pending: int,
    ) -> None:
        self._loader = loader
        self._renderer = renderer
        self._executor = executor
        self._max_pending = max_pending
        self._pending = 0

    @property
    def pending(self) -> int:
        """Requests admitted and not yet finished (loading, queued or rendering)."""
        return self._pending

    async def process(self, request: ImageRequest, format_class: str = "default") -> Rendered:
        """Render ``request``; raise an ``HttpError`` subclass on any refusal."""
        self._renderer.check_request(request)
        if self._pending >= self._max_pending:
            raise OverloadedError("render queue is full, retry later")
        self._pending += 1
        try:
            source = await self._loader.load(request.source)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, self._renderer.render, source.data, request, format_class
            )
        finally:
            self._pending -= 1
