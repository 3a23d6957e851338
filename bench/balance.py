"""Every core busy whatever the connections: thumbor-py with and without connection balancing.

A CPU-bound workload (12 MP crops, every URL different, master cache off) is driven with 2, 4
and 8 keep-alive connections and with 64 clients opening a new connection per request,
``repeats`` times each. Every run opens new connections, so the kernel hashes them to the
workers' SO_REUSEPORT sockets afresh. Reported per setting: req/s (median, worst, worst/best)
and each worker's CPU (seconds of CPU per second of run, from /proc), whose spread is the
direct measure of an idle core; it holds even when other programs share the machine.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.load import Stats, run_load
from bench.workloads import workloads

SETTINGS = (("2 keep-alive", 2, True), ("4 keep-alive", 4, True), ("8 keep-alive", 8, True))
SETTINGS += (("64 short", 64, False),)
MODES = (("balanced (new)", True), ("kernel only (before)", False))


@dataclass
class Runs:
    """The repeated runs of one mode and connection setting."""

    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    workers: list[list[float]] = field(default_factory=list)  # cores busy, per worker, per run
    spread: list[list[int]] = field(default_factory=list)  # open connections per worker, mid-run
    errors: int = 0


def measure(
    folder: Path, work: Path, *, workers: int, repeats: int, duration: float
) -> dict[tuple[str, str], Runs]:
    """Every mode × setting, ``repeats`` runs each (modes interleaved per repeat)."""
    crop = next(w for w in workloads() if w.name == "300x200/large.jpg")
    paths = list(crop.distinct(512))
    found: dict[tuple[str, str], Runs] = {}
    for mode, balance in MODES:
        text = servers.thumbor_py_config(
            folder,
            workers=workers,
            extra_server={"balance_connections": balance},
            extra_imaging={"master_cache_bytes": 0},
        )
        tag = "-balanced" if balance else "-kernel"
        with servers.thumbor_py(text, work, workers=workers, tag=tag) as server:
            asyncio.run(run_load(server.port, paths, concurrency=8, total=16))  # warm up
            for label, connections, keep_alive in SETTINGS:
                runs = found.setdefault((mode, label), Runs())
                for _ in range(repeats):
                    # The same sequence of distinct URLs every run, so that runs differ only
                    # in how the server spreads the work: each output size has its own cost
                    # (the JPEG draft scale, the resize), and with a different slice per run
                    # the CPU per request differed by up to a quarter between runs. Nothing
                    # is cached here (no master cache, no result storage), so a URL asked
                    # for again in the next run costs what it did the first time.
                    _one(server, paths, connections, keep_alive, duration, runs)
                print(f"  {mode}, {label}: " + _summary(runs), flush=True)
    return found


def _one(
    server: servers.Server,
    paths: list[str],
    connections: int,
    keep_alive: bool,
    duration: float,
    runs: Runs,
) -> None:
    pids = server.workers()
    before = [servers.cpu_of(pid) for pid in pids]
    total_before = server.cpu_seconds()
    stats, spread = asyncio.run(
        _load_and_look(server.port, paths, connections, keep_alive, duration)
    )
    busy = [
        (servers.cpu_of(pid) - start) / stats.elapsed
        for pid, start in zip(pids, before, strict=True)
    ]
    runs.rates.append(stats.rate)
    runs.cpu_ms.append(1000 * (server.cpu_seconds() - total_before) / max(stats.ok, 1))
    runs.workers.append(busy)
    if spread:
        runs.spread.append(spread)
    runs.errors += stats.count - stats.ok


async def _load_and_look(
    port: int, paths: list[str], connections: int, keep_alive: bool, duration: float
) -> tuple[Stats, list[int]]:
    """Run the load; halfway through, read each worker's open connections from /metrics."""
    load = asyncio.create_task(
        run_load(port, paths, concurrency=connections, duration=duration, keep_alive=keep_alive)
    )
    await asyncio.sleep(duration / 2)
    spread = await asyncio.to_thread(_connections_per_worker, port) if keep_alive else []
    return await load, spread


def _connections_per_worker(port: int) -> list[int]:
    """Open connections per worker, sorted; the scrape's own connection is one of them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    found = re.findall(r'^thumbor_py_worker_connections\{pid="\d+"\} (\S+)$', text, re.M)
    return sorted(int(float(value)) for value in found)


def _summary(runs: Runs) -> str:
    return " | ".join(_cells(runs))


def _cells(runs: Runs) -> list[str]:
    best, worst = max(runs.rates), min(runs.rates)
    lowest = [min(busy) for busy in runs.workers]
    spread = [min(busy) / max(max(busy), 1e-9) for busy in runs.workers]
    uneven = sum(1 for ratio in spread if ratio < 0.75)
    per_worker = " / ".join(
        f"{statistics.median(column):.2f}" for column in zip(*runs.workers, strict=True)
    )
    worst_spread = max(runs.spread, key=lambda c: c[-1] - c[0], default=None)
    spread = "/".join(map(str, worst_spread)) if worst_spread else "—"
    return [
        spread,
        f"{statistics.median(runs.rates):.1f}",
        f"{worst:.1f}",
        f"{worst / best:.2f}" if best else "—",
        f"{statistics.mean(runs.cpu_ms):.1f} ({min(runs.cpu_ms):.1f}–{max(runs.cpu_ms):.1f})",
        per_worker,
        f"{min(lowest):.2f}",
        f"{uneven}/{len(runs.rates)}",
        str(runs.errors),
    ]


def table(found: dict[tuple[str, str], Runs], *, repeats: int, duration: float) -> None:
    """The Markdown table of :func:`measure`."""
    print(
        f"\n### Connections and cores: 12 MP crops, every URL different, master cache off "
        f"({repeats} runs of {duration:.0f} s per row)\n"
    )
    print(
        "| worker model | connections | connections per worker, worst run | req/s median "
        "| worst | worst/best | CPU ms/req (runs' range) "
        "| cores busy per worker (median) | least busy worker, worst run "
        "| runs with one worker < 0.75× the other | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (mode, label), runs in found.items():
        print(f"| {mode} | {label} | " + " | ".join(_cells(runs)) + " |")
    print(
        "\nconnections per worker: read from /metrics halfway through the run, the scrape's "
        "own connection included (so 4 connections show as 2/3). "
        "cores busy: a worker's user+system CPU seconds per second of the run (/proc); "
        "1.00 is one core kept busy. CPU ms/req: all server processes / 200 answers."
    )
