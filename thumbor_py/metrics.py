"""Prometheus metrics, multi-process aware.

With several worker processes serving one port, each process writes its samples to files in
the folder ``PROMETHEUS_MULTIPROC_DIR`` names (``server.serve`` sets it before forking) and
``/metrics`` in any process aggregates all of them, so a scrape sees the whole server
whichever worker answers. ``prometheus_client`` picks its storage when it is first imported,
so this module imports it, and creates the collectors, on their first use only: importing
this module has no side effect, and the folder may be set at any point before serving.
"""

from __future__ import annotations

import functools
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
    "Master (decoded source) cache outcomes: hit, miss, store, evict, shared (a sibling's).",
    ["outcome"],
)
COHERENCE: Counter = _lazy(
    "Counter",
    "thumbor_py_coherence",
    "Cache coherence: purge, changed, revalidated, revalidation_failed, not_stored, log_error.",
    ["outcome"],
)
REPOSITORY: Counter = _lazy(
    "Counter",
    "thumbor_py_repository",
    "Image repository: uploads, deletes, refusals (outcome = status), auth failures.",
    ["operation", "outcome"],
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
        stage_seconds(stage).observe(time.perf_counter() - started)


# Labelled children, looked up once per label value (a few µs per request saved): the label
# values are a small fixed set (stages, routes x statuses, status classes).
@functools.cache
def stage_seconds(stage: str) -> Any:
    """``STAGE_SECONDS`` for ``stage``."""
    return STAGE_SECONDS.labels(stage=stage)


@functools.cache
def _requests(route: str, status: int) -> Any:
    return REQUESTS.labels(route=route, status=str(status))


def count_request(route: str, status: int) -> None:
    """Count one answered request of ``route``."""
    _requests(route, status).inc()


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
        sample_process()  # this worker's own numbers are fresh in every scrape
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges from the aggregate."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# --- Per-process resources and whole-request latency -------------------------------------
# With several workers the default ProcessCollector is not in the aggregated registry, so each
# worker samples itself into "liveall" gauges (one series per pid, dropped when it exits).
# Unregistered in single-process mode, where prometheus_client's own process_* metrics apply.
_PROCESS_SAMPLE_SECONDS = 5.0

REQUEST_SECONDS: Histogram = _lazy(
    "Histogram",
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


@functools.cache
def _request_seconds(status_class: str) -> Any:
    return REQUEST_SECONDS.labels(status_class=status_class)


def observe_request(status: int, seconds: float) -> None:
    """Record one answered request; starts this process's resource sampler on first use."""
    _request_seconds(status_class(status)).observe(seconds)
    if os.environ.get(MULTIPROC_ENV):
        _start_process_sampler()


@functools.cache
def _process_gauges() -> tuple[Gauge, Gauge, Gauge]:
    # Made on first sample, so that a process that never samples (the supervisor) writes no
    # zero-valued series of its own.
    def gauge(name: str, text: str) -> Gauge:
        made: Gauge = importlib.import_module("prometheus_client").Gauge(
            name, text, multiprocess_mode="liveall", registry=None
        )
        return made

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
