"""Prometheus metrics, multi-process aware.

With several worker processes serving one port, each process writes its samples to files in
the folder ``PROMETHEUS_MULTIPROC_DIR`` names (``server.serve`` sets it before forking) and
``/metrics`` in any process aggregates all of them, so a scrape sees the whole server
whichever worker answers. ``prometheus_client`` picks its storage when it is first imported,
so this module imports it, and creates the collectors, on their first use only: importing
this module has no side effect, and the folder may be set at any point before serving.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class Collectors:
    """Every collector of the process, created together on first use."""

    REQUESTS: Counter
    STAGE_SECONDS: Histogram
    RESULT_STORAGE: Counter
    LOADER_ERRORS: Counter
    QUEUE_DEPTH: Gauge
    IN_FLIGHT: Gauge
    MASTER_CACHE: Counter
    MASTER_CACHE_BYTES: Gauge


def _create() -> Collectors:
    from prometheus_client import Counter, Gauge, Histogram

    return Collectors(
        REQUESTS=Counter(
            "thumbor_py_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
        ),
        STAGE_SECONDS=Histogram(
            "thumbor_py_stage_seconds",
            "Seconds spent per pipeline stage: queue_wait, load, decode, render, store, "
            "storage_hit.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
        ),
        RESULT_STORAGE=Counter(
            "thumbor_py_result_storage",
            "Result-storage outcomes: hit, miss, error, skipped, write, write_failure.",
            ["outcome"],
        ),
        LOADER_ERRORS=Counter(
            "thumbor_py_loader_errors", "Source loads that failed, by error kind.", ["kind"]
        ),
        QUEUE_DEPTH=Gauge(
            "thumbor_py_render_queue_depth",
            "Renders waiting for a render thread.",
            multiprocess_mode="livesum",
        ),
        IN_FLIGHT=Gauge(
            "thumbor_py_renders_in_flight", "Renders running now.", multiprocess_mode="livesum"
        ),
        MASTER_CACHE=Counter(
            "thumbor_py_master_cache",
            "Master (decoded source) cache outcomes: hit, miss, store, evict.",
            ["outcome"],
        ),
        MASTER_CACHE_BYTES=Gauge(
            "thumbor_py_master_cache_bytes",
            "Bytes (sources and master pixels) held by the master cache.",
            multiprocess_mode="livesum",
        ),
    )


_collectors: Collectors | None = None
_creating = threading.Lock()


def collectors() -> Collectors:
    """The process's collectors, created on the first call."""
    global _collectors
    with _creating:
        if _collectors is None:
            _collectors = _create()
        return _collectors


if TYPE_CHECKING:
    REQUESTS: Counter
    STAGE_SECONDS: Histogram
    RESULT_STORAGE: Counter
    LOADER_ERRORS: Counter
    QUEUE_DEPTH: Gauge
    IN_FLIGHT: Gauge
    MASTER_CACHE: Counter
    MASTER_CACHE_BYTES: Gauge
else:

    def __getattr__(name: str) -> object:
        """``metrics.REQUESTS`` and the others, created on first use."""
        if name in Collectors.__dataclass_fields__:
            return getattr(collectors(), name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Observe the duration of the block as ``stage``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        collectors().STAGE_SECONDS.labels(stage=stage).observe(time.perf_counter() - started)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, across worker processes when there are several."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    collectors()  # a scrape before any request still lists every metric
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
