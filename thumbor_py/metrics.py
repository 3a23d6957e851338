"""Prometheus metrics, multi-process aware.

With several worker processes serving one port, each process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (``server.serve`` sets it before this module is first imported,
and before forking) and ``/metrics`` in any process aggregates all of them, so a scrape sees
the whole server whichever worker answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "thumbor_py_requests", "HTTP requests answered, by route and status.", ["route", "status"]
)
STAGE_SECONDS = Histogram(
    "thumbor_py_stage_seconds",
    "Seconds spent per pipeline stage: queue_wait, load, render, store, storage_hit.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
RESULT_STORAGE = Counter(
    "thumbor_py_result_storage",
    "Result-storage outcomes: hit, miss, error, skipped, write, write_failure.",
    ["outcome"],
)
LOADER_ERRORS = Counter(
    "thumbor_py_loader_errors", "Source loads that failed, by error kind.", ["kind"]
)
QUEUE_DEPTH = Gauge(
    "thumbor_py_render_queue_depth",
    "Renders waiting for a render thread.",
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    "thumbor_py_renders_in_flight", "Renders running now.", multiprocess_mode="livesum"
)
MASTER_CACHE = Counter(
    "thumbor_py_master_cache",
    "Master (decoded source) cache outcomes: hit, miss, too_small, store, evict.",
    ["outcome"],
)
COHERENCE = Counter(
    "thumbor_py_coherence",
    "Cache coherence: purge, changed, revalidated, revalidation_failed, not_stored, log_error.",
    ["outcome"],
)
MASTER_CACHE_BYTES = Gauge(
    "thumbor_py_master_cache_bytes",
    "Pixel bytes held by the master cache.",
    multiprocess_mode="livesum",
)


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
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges from the aggregate."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
