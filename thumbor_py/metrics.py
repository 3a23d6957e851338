"""Prometheus metrics, multi-process aware.

With several worker processes serving one port, each process writes its samples to files in
the folder ``PROMETHEUS_MULTIPROC_DIR`` names (``server.serve`` sets it before forking) and
``/metrics`` in any process aggregates all of them, so a scrape sees the whole server
whichever worker answers. ``prometheus_client`` picks its storage when it is first imported,
so this module imports it, and creates the collectors, on their first use only: importing
this module has no side effect, and the folder may be set at any point before serving.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_creating = threading.Lock()


class _Lazy:
    """A collector that is created (and registered) on first use."""

    def __init__(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._kind = kind
        self._args = args
        self._kwargs = kwargs
        self._made: object | None = None

    def made(self) -> object:
        """The collector, created now if it was not yet."""
        made = self._made  # after start-up, every use takes this path: no lock
        if made is None:
            with _creating:
                if self._made is None:
                    kind = getattr(importlib.import_module("prometheus_client"), self._kind)
                    self._made = kind(*self._args, **self._kwargs)
                made = self._made
        return made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


_ALL: list[_Lazy] = []


def _lazy(kind: str, *args: Any, **kwargs: Any) -> Any:
    collector = _Lazy(kind, args, kwargs)
    _ALL.append(collector)
    return collector


REQUESTS: Counter = _lazy(
    "Counter",
    "thumbor_py_requests",
    "HTTP requests answered, by route and status.",
    ["route", "status"],
)
STAGE_SECONDS: Histogram = _lazy(
    "Histogram",
    "thumbor_py_stage_seconds",
    "Seconds spent per pipeline stage: queue_wait, load, decode, render, store, storage_hit.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
RESULT_STORAGE: Counter = _lazy(
    "Counter",
    "thumbor_py_result_storage",
    "Result-storage outcomes: hit, miss, error, skipped, write, write_failure, refused, bug.",
    ["outcome"],
)
STORAGE_BUGS: Counter = _lazy(
    "Counter",
    "thumbor_py_storage_bugs",
    "Result-storage calls that raised something no backend failure raises (a bug), by call.",
    ["call"],
)
RESULT_STORAGE_DEGRADED: Gauge = _lazy(
    "Gauge",
    "thumbor_py_result_storage_degraded",
    "1 while the result storage is failing (images are still served, without it), else 0.",
    multiprocess_mode="livemax",
)
LOADER_ERRORS: Counter = _lazy(
    "Counter", "thumbor_py_loader_errors", "Source loads that failed, by error kind.", ["kind"]
)
QUEUE_DEPTH: Gauge = _lazy(
    "Gauge",
    "thumbor_py_render_queue_depth",
    "Renders waiting for a render thread.",
    multiprocess_mode="livesum",
)
IN_FLIGHT: Gauge = _lazy(
    "Gauge", "thumbor_py_renders_in_flight", "Renders running now.", multiprocess_mode="livesum"
)
MASTER_CACHE: Counter = _lazy(
    "Counter",
    "thumbor_py_master_cache",
    "Master (decoded source) cache outcomes: hit, miss, store, evict.",
    ["outcome"],
)
MASTER_CACHE_BYTES: Gauge = _lazy(
    "Gauge",
    "thumbor_py_master_cache_bytes",
    "Bytes (sources and master pixels) held by the master cache.",
    multiprocess_mode="livesum",
)


def create_all() -> None:
    """Create every collector now (start-up calls it, after choosing the samples folder)."""
    for collector in _ALL:
        collector.made()


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Observe the duration of the block as ``stage``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage=stage).observe(time.perf_counter() - started)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, across worker processes when there are several."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    create_all()  # a scrape before any request still lists every metric
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges from the aggregate."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
