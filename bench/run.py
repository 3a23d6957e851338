"""Side-by-side benchmark: raw Pillow in-process, thumbor-py, and Thumbor 7.8.

    .venv/bin/python bench/run.py            # the full run (about 35 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # a sanity run (about 6 minutes)
    .venv/bin/python bench/run.py --skip compare,workers,health,rss   # connections only

Images are generated into ``bench/.cache/images`` (git-ignored). Thumbor is taken from
``--thumbor-venv`` (default ``$THUMBOR_VENV`` or ``/tmp/thumbor-venv``) and, with
``--create-thumbor-venv``, installed there first (``pip install thumbor==7.8.0``); without
it, thumbor-py is measured alone. Both servers get the same images, the same settings (file
loader, no detectors, quality 80, no access log) and every core: thumbor-py pre-forks one
worker per CPU, and Thumbor runs one instance per CPU on SO_REUSEPORT sockets (its best
multi-core setup). The headline table requests a different URL every time (the output size
varies), with thumbor-py's master cache off except for srcset, whose 100 URLs are requested
once per server, cold. Workloads alternate: each runs on thumbor-py and then on Thumbor,
under the same closed-loop load, for each connection count of ``--connections``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import balance, images, report, servers, srcset_limit
from bench.load import Stats, probe, run_load
from bench.workloads import Workload, workloads

CACHE = Path(__file__).resolve().parent / ".cache"
CPUS = len(os.sched_getaffinity(0))
# Output sizes each workload cycles through (Workload.distinct): every URL a different size.
DISTINCT = 256


@dataclass
class Measured:
    """One workload on one server."""

    stats: Stats
    cpu_ms: float
    cores: float = 0.0  # server CPU seconds per second: how many cores it kept busy

    @property
    def errors(self) -> int:
        return self.stats.count - self.stats.ok


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a sanity check")
    parser.add_argument(
        "--duration", type=float, help="seconds per workload and server (8; quick 2)"
    )
    parser.add_argument(
        "--connections", help="keep-alive connection counts to sweep (2,4,8; quick 4)"
    )
    parser.add_argument(
        "--repeats", type=int, help="runs per setting in the connections section (10; quick 3)"
    )
    parser.add_argument("--only", help="run the workloads whose name contains this")
    default_venv = os.environ.get("THUMBOR_VENV", "/tmp/thumbor-venv")
    parser.add_argument("--thumbor-venv", type=Path, default=Path(default_venv))
    parser.add_argument(
        "--create-thumbor-venv",
        action="store_true",
        help="pip install thumbor==7.8.0 there if absent",
    )
    parser.add_argument("--no-thumbor", action="store_true", help="thumbor-py and Pillow only")
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of sections to skip: compare,balance,workers,health,rss",
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    duration = args.duration or (2.0 if args.quick else 8.0)
    args.sweep = [int(n) for n in (args.connections or ("4" if args.quick else "2,4,8")).split(",")]
    args.concurrency = max(args.sweep)
    folder = CACHE / "images"
    print(f"images: {folder} ({CPUS} CPUs, load average {os.getloadavg()[0]:.1f})")
    images.generate(folder)
    venv = None
    if not args.no_thumbor:
        venv = servers.ensure_thumbor(args.thumbor_venv, create=args.create_thumbor_venv)
        if venv is None:
            print(f"no Thumbor in {args.thumbor_venv}: pass --create-thumbor-venv to install it")
    chosen = [w for w in workloads() if not args.only or args.only in w.name]
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="thumbor-bench-") as temp:
        work = Path(temp)
        if "compare" not in skip:
            raw = {w.name: _raw_ms(w, folder, 4 if args.quick else 16) for w in chosen}
            rows = _compare(chosen, raw, folder, work, venv, args, duration)
            report.table(rows, duration=duration, cpus=CPUS)
        if "balance" not in skip:
            repeats = args.repeats or (3 if args.quick else 10)
            seconds = 1.5 if args.quick else 3.0
            found = balance.measure(folder, work, workers=CPUS, repeats=repeats, duration=seconds)
            balance.table(found, repeats=repeats, duration=seconds)
        if "workers" not in skip:
            _worker_model(folder, work, args, duration)
        if "health" not in skip:
            _health(folder, work, venv, args, duration)
        if "rss" not in skip:
            _memory(folder, work, total=1000 if args.quick else 5000)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other programs share the CPUs)")


def _compare(
    chosen: list[Workload],
    raw: dict[str, float | None],
    folder: Path,
    work: Path,
    venv: Path | None,
    args: argparse.Namespace,
    duration: float,
) -> list[report.Row]:
    """Each workload, every URL different, on thumbor-py then on Thumbor, for each
    connection count; a fresh pair of servers per workload and count (srcset stays cold)."""
    rows = []
    for workload in chosen:
        distinct = Workload(
            workload.name,
            workload.distinct(DISTINCT),
            workload.raw,
            workload.note,
            workload.result_storage,
        )
        for connections in args.sweep:
            with ExitStack() as stack:
                ours = stack.enter_context(_thumbor_py(folder, work, workload))
                theirs = (
                    stack.enter_context(_thumbor(venv, folder, work, workload)) if venv else None
                )
                measured_ours = _measure(ours, distinct, connections, duration)
                measured_theirs = (
                    _measure(theirs, distinct, connections, duration) if theirs else None
                )
            row = report.Row(workload.name, workload.note, raw[workload.name], measured_ours)
            row.theirs, row.connections = measured_theirs, connections
            report.print_row(row)
            rows.append(row)
    return rows


@contextmanager
def _thumbor_py(folder: Path, work: Path, workload: Workload) -> Iterator[servers.Server]:
    storage = _storage_folder(work, "ours", workload)
    # Nothing shared between requests, as in Thumbor; srcset keeps the master cache, which
    # exists for it (one decode per source, every width cut from it).
    imaging = {} if workload.name.startswith("srcset") else {"master_cache_bytes": 0}
    text = servers.thumbor_py_config(
        folder, workers=0, result_storage=storage, extra_imaging=imaging
    )
    with servers.thumbor_py(text, work, workers=CPUS) as server:
        yield server


@contextmanager
def _thumbor(venv: Path, folder: Path, work: Path, workload: Workload) -> Iterator[servers.Server]:
    storage = _storage_folder(work, "thumbor", workload)
    conf = servers.thumbor_conf(folder, result_storage=storage)
    with servers.thumbor(venv, conf, work, processes=CPUS) as server:
        yield server


def _storage_folder(work: Path, name: str, workload: Workload) -> Path | None:
    if not workload.result_storage:
        return None
    folder = work / f"results-{name}-{time.monotonic_ns()}"
    folder.mkdir()
    return folder


def _measure(
    server: servers.Server, workload: Workload, connections: int, duration: float
) -> Measured:
    paths = list(workload.paths)
    if workload.name.startswith("srcset"):
        # Cold, once: each source decoded for the first time; a second pass would be warm.
        return _timed(server, paths, connections, total=len(paths))
    warm = max(connections * 2, 8)
    asyncio.run(run_load(server.port, paths, concurrency=connections, total=warm))
    return _timed(
        server,
        paths[warm % len(paths) :] + paths[: warm % len(paths)],
        connections,
        duration=duration,
    )


def _timed(
    server: servers.Server,
    paths: list[str],
    concurrency: int,
    *,
    duration: float | None = None,
    total: int | None = None,
) -> Measured:
    before = server.cpu_seconds()
    stats = asyncio.run(
        run_load(server.port, paths, concurrency=concurrency, duration=duration, total=total)
    )
    cpu = server.cpu_seconds() - before
    return Measured(stats, 1000 * cpu / max(stats.ok, 1), cpu / max(stats.elapsed, 1e-9))


def _raw_ms(workload: Workload, folder: Path, sizes: int) -> float | None:
    """Mean CPU milliseconds of the raw-Pillow operation, in this process, over ``sizes``
    output sizes spread evenly across the ``DISTINCT`` ones the servers are sent."""
    if workload.name.startswith("srcset"):
        # The limit of a cold pass: one decode per source, one resize and encode per width.
        return min(srcset_limit.raw_ms(folder), srcset_limit.renderer_ms(folder))
    if workload.raw is None:
        return None
    source = folder / workload.paths[0].rsplit("/", 1)[-1]
    workload.raw(source, 0)  # imports and first-call costs
    extras = range(0, DISTINCT, max(DISTINCT // sizes, 1))
    started = time.process_time()
    for extra in extras:
        workload.raw(source, extra)
    return 1000 * (time.process_time() - started) / len(extras)


def _worker_model(folder: Path, work: Path, args: argparse.Namespace, duration: float) -> None:
    """Pre-forked workers against one loop feeding a process pool, on CPU-bound renders:
    every URL different and the master cache off, so every request decodes a 12 MP JPEG."""
    base = workloads()
    paths = [p for w in base if w.name in _CPU_BOUND for p in w.variants(48)]
    random.Random(3).shuffle(paths)
    concurrency = max(args.concurrency, 4 * CPUS)
    no_master = {"master_cache_bytes": 0}
    models: list[tuple[str, Callable[[], AbstractContextManager[servers.Server]]]] = []
    for workers, threads in ((1, 1), (CPUS, 1), (1, 2), (CPUS, 2)):
        text = servers.thumbor_py_config(
            folder,
            workers=workers,
            extra_server={"render_threads": threads},
            extra_imaging=no_master,
        )
        label = f"pre-fork, workers: {workers}, render_threads: {threads}"
        models.append(
            (
                label,
                partial(
                    servers.thumbor_py, text, work, workers=workers, tag=f"-w{workers}t{threads}"
                ),
            )
        )
    text = servers.thumbor_py_config(folder, workers=1, extra_imaging=no_master)
    models.append(
        (
            f"one loop + process pool of {CPUS}",
            partial(servers.process_pool_model, text, work, processes=CPUS),
        )
    )
    results: dict[str, list[Measured]] = {label: [] for label, _ in models}
    for _ in range(1 if args.quick else 2):  # rounds, interleaved: the machine is shared
        for label, start in models:
            with start() as server:
                asyncio.run(run_load(server.port, paths, concurrency=concurrency, total=8))
                results[label].append(_timed(server, paths, concurrency, duration=duration))
    report.worker_model(results, sorted(_CPU_BOUND), concurrency)


_CPU_BOUND = {"300x200/large.jpg", "fit-in/800x600/large.jpg"}


def _health(
    folder: Path, work: Path, venv: Path | None, args: argparse.Namespace, duration: float
) -> None:
    """/healthcheck latency while renders saturate every CPU, and admission under overload."""
    fit = next(w for w in workloads() if w.name == "fit-in/800x600/large.jpg")
    paths = list(fit.variants(64))
    found: dict[str, tuple[Stats, Stats]] = {}
    overload = 16 * CPUS
    text = servers.thumbor_py_config(folder, workers=0)
    with servers.thumbor_py(text, work, workers=CPUS, tag="-health") as server:
        found[f"thumbor-py, {4 * CPUS} connections"] = _probed(server, paths, 4 * CPUS, duration)
    text = servers.thumbor_py_config(folder, workers=0, extra_server={"render_queue": 2})
    with servers.thumbor_py(text, work, workers=CPUS, tag="-overload") as server:
        label = f"thumbor-py, render_queue: 2, {overload} connections"
        found[label] = _probed(server, paths, overload, duration)
    if venv is not None:
        conf = servers.thumbor_conf(folder)
        with servers.thumbor(venv, conf, work, processes=CPUS, tag="-health") as server:
            found[f"Thumbor 7.8, {4 * CPUS} connections"] = _probed(
                server, paths, 4 * CPUS, duration
            )
    report.health(found)


def _probed(
    server: servers.Server, paths: list[str], concurrency: int, duration: float
) -> tuple[Stats, Stats]:
    async def both() -> tuple[Stats, Stats]:
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(server.port, "/healthcheck", 0.02, stop))
        load = await run_load(server.port, paths, concurrency=concurrency, duration=duration)
        stop.set()
        return load, await prober

    return asyncio.run(both())


def _memory(folder: Path, work: Path, total: int) -> None:
    """RSS of each worker over ``total`` mixed requests: every workload, each URL varied so
    that every request renders (srcset included), default settings (master cache on)."""
    mixed: list[str] = []
    for workload in workloads():
        if not workload.result_storage:
            mixed += list(workload.variants(16))
    random.Random(5).shuffle(mixed)
    text = servers.thumbor_py_config(folder, workers=0)
    samples: list[tuple[int, list[float]]] = []
    with servers.thumbor_py(text, work, workers=CPUS, tag="-rss") as server:
        samples.append((0, server.rss_mib()))
        step = max(total // 10, 1)
        done = 0
        while done < total:
            offset = done % len(mixed)
            batch = mixed[offset:] + mixed[:offset]
            asyncio.run(run_load(server.port, batch, concurrency=8, total=step))
            done += step
            samples.append((done, server.rss_mib()))
    report.memory(samples)


if __name__ == "__main__":
    main()
