"""Printing the benchmark's tables (Markdown, so they paste into the README)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.load import Stats
    from bench.run import Measured


@dataclass
class Row:
    """One workload: raw Pillow, thumbor-py and (maybe) Thumbor."""

    name: str
    note: str
    raw_ms: float | None
    ours: Measured
    theirs: Measured | None = None
    connections: int = 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.01 else f"{seconds * 1000:.1f}"


def _server(measured: Measured | None) -> list[str]:
    if measured is None:
        return ["—"] * 4
    stats = measured.stats
    rate = f"{stats.rate:.0f}" if stats.rate >= 10 else f"{stats.rate:.1f}"
    if measured.errors:
        rate += f" ({measured.errors} err)"
    cpu = f"{measured.cpu_ms:.1f}"
    return [rate, _ms(stats.percentile(0.5)), _ms(stats.percentile(0.99)), cpu]


def _cells(row: Row) -> list[str]:
    ratio = "—"
    if row.theirs is not None and row.theirs.stats.rate:
        ratio = f"{row.ours.stats.rate / row.theirs.stats.rate:.2f}×"
    to_raw = f"{row.ours.cpu_ms / row.raw_ms:.2f}" if row.raw_ms else "—"
    raw = f"{row.raw_ms:.1f}" if row.raw_ms else "—"
    cpu_ratio = "—"
    if row.theirs is not None and row.theirs.cpu_ms:
        cpu_ratio = f"{row.ours.cpu_ms / row.theirs.cpu_ms:.2f}"
    name = f"`{row.name}`" + (f" ({row.note})" if row.note else "")
    return [
        name,
        str(row.connections),
        *_server(row.ours),
        *_server(row.theirs),
        ratio,
        cpu_ratio,
        raw,
        to_raw,
    ]


_HEAD = (
    "| workload | conn. | thumbor-py req/s | p50 ms | p99 ms | CPU ms/req "
    "| Thumbor req/s | p50 ms | p99 ms | CPU ms/req | req/s vs Thumbor | CPU vs Thumbor "
    "| raw Pillow CPU ms | CPU vs Pillow |"
)


def print_row(row: Row) -> None:
    """Progress: one line as soon as a workload is done."""
    print("  " + " | ".join(_cells(row)), flush=True)


def table(rows: list[Row], *, duration: float, cpus: int) -> None:
    print(
        f"\n### Every URL distinct ({cpus} CPUs, keep-alive connections as given, "
        f"{duration:.0f} s per workload, server and connection count; srcset: one cold pass)\n"
    )
    print(_HEAD)
    print("|" + "---|" * 14)
    for row in rows:
        print("| " + " | ".join(_cells(row)) + " |")
    print(
        "\nEvery request is a different URL (the output size varies by a pixel), no result "
        "storage, thumbor-py's master cache off (srcset: on, one pass of its 100 URLs per "
        "server). CPU ms/req: user+system CPU of all server processes / answers. "
        "raw Pillow: the same operation by Pillow alone, in-process, averaged over 16 of the "
        "output sizes the servers render (srcset: the limit of a cold pass, one decode per "
        "source and one resize and encode per width, bench/srcset_limit.py). CPU vs Pillow: "
        "thumbor-py's CPU per request / raw Pillow's."
    )


def worker_model(results: dict[str, list[Measured]], names: list[str], concurrency: int) -> None:
    print(
        f"\n### Worker model: {' + '.join(names)}, every URL different, master cache off, "
        f"{concurrency} connections (best of the rounds)\n"
    )
    print("| model | req/s | p50 ms | p99 ms | CPU ms/req | cores busy | vs first row |")
    print("|---|---|---|---|---|---|---|")
    best = {label: max(runs, key=lambda m: m.stats.rate) for label, runs in results.items()}
    base = next(iter(best.values())).stats.rate
    for label, measured in best.items():
        stats = measured.stats
        print(
            f"| {label} | {stats.rate:.1f} | {_ms(stats.percentile(0.5))} | "
            f"{_ms(stats.percentile(0.99))} | {measured.cpu_ms:.1f} | {measured.cores:.2f} | "
            f"{stats.rate / base:.2f}× |"
        )


def health(found: dict[str, tuple[Stats, Stats]]) -> None:
    print("\n### Event loop under load: /healthcheck every 20 ms while renders saturate the CPUs\n")
    print("| server | render req/s | answers | healthcheck p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for label, (load, probed) in found.items():
        answers = ", ".join(f"{count}× {status}" for status, count in sorted(load.statuses.items()))
        print(
            f"| {label} | {load.rate:.1f} | {answers} | {_ms(probed.percentile(0.5))} | "
            f"{_ms(probed.percentile(0.99))} | {_ms(max(probed.latencies, default=0))} |"
        )


def memory(samples: list[tuple[int, list[float]]]) -> None:
    print("\n### Memory: RSS per worker (MiB) over mixed requests\n")
    print("| requests | " + " | ".join(f"worker {i + 1}" for i in range(len(samples[0][1]))) + " |")
    print("|---|" + "---|" * len(samples[0][1]))
    for done, rss in samples:
        print(f"| {done} | " + " | ".join(f"{value:.0f}" for value in rss) + " |")
    settled = [statistics.mean(rss) for _, rss in samples[len(samples) // 5 :]]
    if len(settled) > 1:
        low, high = min(settled), max(settled)
        print(f"\nmean RSS per worker from 20 % of the run to the end: {low:.0f}–{high:.0f} MiB")
