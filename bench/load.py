"""A small closed-loop HTTP/1.1 load generator on asyncio streams (keep-alive, no deps).

Each of ``concurrency`` connections sends one request, reads the whole answer, and sends the
next, until the duration is over. It is deliberately lean: client and servers share the
machine's cores, so every microsecond the client spends is taken from the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    """Latencies (seconds) and status counts of one run."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    body_bytes: int = 0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        """The latency below which ``fraction`` of requests finished (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index]


class _Connection:
    def __init__(self, host: str, port: int, *, keep_alive: bool = True) -> None:
        self._host, self._port = host, port
        self._close = "" if keep_alive else "Connection: close\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, int]:
        """Status and body length of ``GET path``; reconnects when the server closed."""
        for attempt in range(2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
            assert self._reader is not None
            assert self._writer is not None
            self._writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\nAccept: */*\r\n"
                f"{self._close}\r\n".encode()
            )
            try:
                return await self._read(self._reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, int]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            length = int(headers["content-length"])
            await reader.readexactly(length)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            length = await _read_chunked(reader)
        else:
            length = 0
        if self._close or headers.get("connection", "").lower() == "close":
            self.close()
        return status, length

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _read_chunked(reader: asyncio.StreamReader) -> int:
    total = 0
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        await reader.readexactly(size + 2)
        total += size
        if size == 0:
            return total


def cycle_paths(paths: Sequence[str]) -> Iterator[str]:
    """The paths in order, forever (a shared iterator keeps every connection in sequence)."""
    return itertools.cycle(paths)


async def run_load(
    port: int,
    paths: Sequence[str],
    *,
    concurrency: int,
    duration: float | None = None,
    total: int | None = None,
    host: str = "127.0.0.1",
    keep_alive: bool = True,
) -> Stats:
    """Drive ``concurrency`` clients for ``duration`` seconds or ``total`` requests, each on
    one keep-alive connection, or with ``keep_alive=False`` a new connection per request."""
    stats = Stats()
    source = cycle_paths(paths)
    sent = itertools.count()
    started = time.perf_counter()
    stop_at = started + duration if duration is not None else float("inf")

    async def worker() -> None:
        connection = _Connection(host, port, keep_alive=keep_alive)
        try:
            while time.perf_counter() < stop_at and (total is None or next(sent) < total):
                path = next(source)
                begin = time.perf_counter()
                status, length = await connection.get(path)
                stats.latencies.append(time.perf_counter() - begin)
                stats.statuses[status] = stats.statuses.get(status, 0) + 1
                stats.body_bytes += length
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.elapsed = time.perf_counter() - started
    return stats


async def probe(port: int, path: str, interval: float, stop: asyncio.Event) -> Stats:
    """GET ``path`` every ``interval`` seconds on one connection until ``stop`` is set."""
    stats = Stats()
    connection = _Connection("127.0.0.1", port)
    started = time.perf_counter()
    try:
        while not stop.is_set():
            begin = time.perf_counter()
            status, _ = await connection.get(path)
            stats.latencies.append(time.perf_counter() - begin)
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        connection.close()
    stats.elapsed = time.perf_counter() - started
    return stats
