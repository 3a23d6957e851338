"""Sources read on the render thread: one thread hand-off per request instead of two.

A loader whose read is cheap, local and blocking (the file loader) offers
``read_blocking`` (:class:`thumbor_py.plugins.BlockingLoader`). The pipeline then reads the
source in the same render-thread job that decodes or renders it, instead of reading on an
I/O thread, coming back to the event loop, and going out to a render thread again: for a
small image that round trip was a fifth of the request's CPU (docs/performance.md).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TypeVar, cast

from thumbor_py import metrics
from thumbor_py.errors import HttpError
from thumbor_py.imaging.master import PixelSource
from thumbor_py.plugins import BlockingLoader, Loader, Source, offers
from thumbor_py.routing import RoutingLoader

T = TypeVar("T")


def blocking_read(loader: Loader, name: str) -> Callable[[], Source] | None:
    """A blocking read of ``name`` for a render thread, when its loader offers one."""
    if isinstance(loader, RoutingLoader):
        loader = loader.loader_for(name)
    if offers(type(loader), "read_blocking"):
        return functools.partial(cast(BlockingLoader, loader).read_blocking, name)
    return None


def read_then(
    identity: str, read: Callable[[], Source], then: Callable[[PixelSource], T], stage: str
) -> T:
    """On a render thread: read the source (stamped with the time before the read, as
    ``Pipeline._fetch`` does), then hand it to ``then`` (timed as ``stage``)."""
    loaded_at = time.time()
    try:
        with metrics.timed("load"):
            loaded = read()
    except HttpError as exc:
        metrics.LOADER_ERRORS.labels(kind=type(exc).__name__).inc()
        raise
    with metrics.timed(stage):
        return then(PixelSource(identity, loaded.data, loaded_at=loaded_at, version=loaded.version))
