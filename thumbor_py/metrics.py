"""Prometheus metrics, multi-process aware.

With several worker processes serving one port, each process writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (``server.serve`` sets it before this module is first imported,
and before forking) and ``/metrics`` in any process aggregates all of them, so a scrape sees
the whole server whichever worker answers.
"""

from __future__ import annotations

import functools
import os
import threading
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
        sample_process()  # this worker's own numbers are fresh in every scrape
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges from the aggregate."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# --- Per-process resources and whole-request latency -------------------------------------
# With several workers the default ProcessCollector is not in the aggregated registry, so each
# worker samples itself into "liveall" gauges (one series per pid, dropped when it exits).
# Unregistered in single-process mode, where prometheus_client's own process_* metrics apply.
_PROCESS_SAMPLE_SECONDS = 5.0

REQUEST_SECONDS = Histogram(
    "thumbor_py_request_seconds",
    "Whole-request latency, by status class (2xx, 3xx, 4xx, 5xx).",
    ["status_class"],
    buckets=_STAGE_BUCKETS,
)
_sampler_pid = 0


def status_class(status: int) -> str:
    """``2xx`` for 200..299 and so on; anything outside 100..599 counts as ``5xx``."""
    first = status // 100
    return f"{first}xx" if 1 <= first <= 5 else "5xx"


def observe_request(status: int, seconds: float) -> None:
    """Record one answered request; starts this process's resource sampler on first use."""
    REQUEST_SECONDS.labels(status_class=status_class(status)).observe(seconds)
    if os.environ.get(MULTIPROC_ENV):
        _start_process_sampler()


@functools.cache
def _process_gauges() -> tuple[Gauge, Gauge, Gauge]:
    # Made on first sample, so that a process that never samples (the supervisor) writes no
    # zero-valued series of its own.
    def gauge(name: str, text: str) -> Gauge:
        return Gauge(name, text, multiprocess_mode="liveall", registry=None)

    return (
        gauge("process_resident_memory_bytes", "Resident memory size in bytes, per worker."),
        gauge("process_cpu_seconds_total", "User and system CPU seconds, per worker."),
        gauge("process_open_fds", "Number of open file descriptors, per worker."),
    )


def sample_process() -> None:
    """Write this process's RSS, CPU seconds and open descriptors (reads /proc: off-loop)."""
    rss, cpu, fds = _process_gauges()
    times = os.times()
    cpu.set(times.user + times.system)
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss.set(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
        fds.set(len(os.listdir("/proc/self/fd")))
    except (OSError, ValueError, IndexError):
        pass  # no /proc (not Linux): CPU time only


def _start_process_sampler() -> None:
    global _sampler_pid  # one sampler thread per (forked) process
    if _sampler_pid == os.getpid():
        return
    _sampler_pid = os.getpid()

    def run() -> None:
        while True:
            sample_process()
            time.sleep(_PROCESS_SAMPLE_SECONDS)

    threading.Thread(target=run, name="thumbor-py-process-metrics", daemon=True).start()
