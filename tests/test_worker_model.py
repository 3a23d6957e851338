"""A real two-worker server: keep-alive connections spread evenly, a killed worker is
replaced, the banner is logged after binding, and shutdown says what it drained."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, serve_process, stop_server, wait_for_port
from tests.test_operations import total
from thumbor_py import allocator


@dataclass
class Running:
    """A `thumbor-py serve` process, its port and the file its logs go to."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, workers: int, timeout: float = 30) -> None:
        """Until every worker has logged that it serves (and takes hand-overs)."""
        deadline = time.monotonic() + timeout
        while self.text().count(" serving (pid ") < workers:
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)

    def workers(self) -> list[int]:
        found: list[int] = []
        for task in os.listdir(f"/proc/{self.process.pid}/task"):
            text = Path(f"/proc/{self.process.pid}/task/{task}/children").read_text()
            found += [int(pid) for pid in text.split()]
        return found


def _start(tmp_path: Path, server: str, *, port: int | None = None) -> Running:
    port = port or free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        "security: {allow_unsafe: true}\n"
        f"loader: {{use: file, settings: {{root: {REPO / 'samples'}}}}}\n"
        f"server: {{{server}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBOR_PY_")}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = serve_process(config, port, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Running(process, port, log)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Running]:
    running = _start(tmp_path, "workers: 2, access_log: false, restart_delay: 0.2")
    try:
        wait_for_port(running.port)
        running.wait_serving(2)
        yield running
    finally:
        stop_server(running.process)


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    return status, await reader.readexactly(length)


def _connections_per_worker(metrics: str) -> dict[str, float]:
    found = re.findall(r'^thumbor_py_worker_connections\{pid="(\d+)"\} (\S+)$', metrics, re.M)
    return {pid: float(value) for pid, value in found}


async def _open_and_count(port: int, count: int) -> dict[str, float]:
    """Open ``count`` connections at once, one request each, then read the per-worker counts
    (the scrape's own connection included)."""
    streams = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(count))
    )
    try:
        answers = await asyncio.gather(*(_request(r, w, "/healthcheck") for r, w in streams))
        assert [status for status, _ in answers] == [200] * count
        scrape = await asyncio.open_connection("127.0.0.1", port)
        _, body = await _request(*scrape, "/metrics")
        scrape[1].close()
        return _connections_per_worker(body.decode())
    finally:
        for _, writer in streams:
            writer.close()


async def _settled(port: int) -> None:
    """Wait until both workers report no client connection but the scrape's."""
    for _ in range(100):
        scrape = await asyncio.open_connection("127.0.0.1", port)
        _, body = await _request(*scrape, "/metrics")
        scrape[1].close()
        if sum(_connections_per_worker(body.decode()).values()) <= 1:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("connections did not close")


async def test_keep_alive_connections_are_spread_evenly(two_workers: Running) -> None:
    """Whatever the kernel's choice, 2, 4 and 8 connections end up half on each worker
    (with the kernel alone, 4 connections all land on one worker one time in eight)."""
    for count in (2, 4, 8) * 4:
        counts = await _open_and_count(two_workers.port, count)
        assert len(counts) == 2, counts
        assert sum(counts.values()) == count + 1
        assert max(counts.values()) - min(counts.values()) <= 1, (count, counts)
        await _settled(two_workers.port)


async def test_a_killed_worker_is_logged_replaced_and_counted(two_workers: Running) -> None:
    before = two_workers.workers()
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = two_workers.workers()
        if len(now) == 2 and before[0] not in now:
            break
        await asyncio.sleep(0.05)
    replacement = next(pid for pid in two_workers.workers() if pid not in before)
    await asyncio.to_thread(two_workers.wait_serving, 3)  # the replacement serves
    counts = await _open_and_count(two_workers.port, 4)
    assert counts.get(str(replacement), 0) >= 2, counts  # it serves its share
    assert str(before[0]) not in counts  # the dead worker's gauge is gone
    scrape = await asyncio.open_connection("127.0.0.1", two_workers.port)
    _, body = await _request(*scrape, "/metrics")
    scrape[1].close()
    assert total(body.decode(), "thumbor_py_worker_restarts_total") == 1
    log = two_workers.text()
    assert re.search(rf"worker \d \(pid {before[0]}\) killed by signal SIGKILL", log), log
    assert f"restarted as pid {replacement}" in log


def test_banner_comes_after_binding_as_json_and_shutdown_is_logged(tmp_path: Path) -> None:
    running = _start(tmp_path, "workers: 2, log_format: json, access_log: false")
    try:
        wait_for_port(running.port)
        time.sleep(0.5)
    finally:
        code = stop_server(running.process)
    assert code == 0
    lines = [json.loads(line) for line in running.text().splitlines()]  # every line is JSON
    messages = [line["message"] for line in lines]
    assert messages[0] == f"thumbor-py listening on http://127.0.0.1:{running.port} (workers: 2)"
    assert messages[1].startswith(f"try: http://127.0.0.1:{running.port}/unsafe/")
    stopped = [m for m in messages if re.match(r"worker \d stopped: drained \d+ connection", m)]
    assert len(stopped) == 2, messages


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_workers_run_the_configured_event_loop_and_allocator(
    tmp_path: Path, event_loop: str
) -> None:
    """uvloop by default; ``server.event_loop: asyncio`` runs asyncio's own loop. Each worker
    names its loop and its allocator tuning when it starts serving, and both serve images and
    hand-overs alike. (The asyncio run also turns the tuning off.)"""
    setting = "" if event_loop == "uvloop" else ", event_loop: asyncio, malloc_retain_bytes: 0"
    running = _start(tmp_path, f"workers: 2, access_log: false{setting}")
    try:
        wait_for_port(running.port)
        running.wait_serving(2)
        for _ in range(4):  # new connections: some are handed over to the sibling
            with socket.create_connection(("127.0.0.1", running.port), timeout=10) as client:
                client.sendall(b"GET /unsafe/40x30/coffee.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        assert stop_server(running.process) == 0
    text = running.text()
    assert text.count(f"{event_loop} event loop, ") == 2, text
    tuned = event_loop == "uvloop" and allocator.glibc() is not None
    logged = "allocator keeps 32 MiB free per arena" if tuned else "allocator defaults"
    assert text.count(logged) == 2, text


def _allowed_cpus(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("pin", [True, False])
def test_one_worker_per_cpu_is_pinned_to_its_own(tmp_path: Path, pin: bool) -> None:
    """With as many workers as CPUs, ``pin_workers`` (the default) gives each worker (and
    every thread it starts) a CPU of its own, the same again for a worker that replaces a
    dead one; ``pin_workers: false`` leaves every worker on all of them."""
    cpus = sorted(os.sched_getaffinity(0))
    running = _start(
        tmp_path, f"workers: {len(cpus)}, access_log: false, pin_workers: {str(pin).lower()}"
    )
    try:
        wait_for_port(running.port)
        running.wait_serving(len(cpus))
        workers = running.workers()
        everything = _allowed_cpus(running.process.pid)
        pinned = sorted(_allowed_cpus(pid) for pid in workers)
        if not pin:
            assert pinned == [everything] * len(cpus)
            return
        assert pinned == sorted(str(cpu) for cpu in cpus)
        threads = {_allowed_cpus(int(task)) for task in os.listdir(f"/proc/{workers[0]}/task")}
        assert threads == {_allowed_cpus(workers[0])}  # every thread on the worker's one CPU
        before = {pid: _allowed_cpus(pid) for pid in workers}
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(set(running.workers()) - set(workers)) < 1:
            assert time.monotonic() < deadline, running.text()
            time.sleep(0.05)
        (replacement,) = set(running.workers()) - set(workers)
        deadline = time.monotonic() + 30
        while _allowed_cpus(replacement) != before[workers[0]]:
            assert time.monotonic() < deadline, (_allowed_cpus(replacement), before)
            time.sleep(0.05)
    finally:
        assert stop_server(running.process) == 0
    assert f"CPU {cpus[0]}, " in running.text()


def test_no_banner_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        running = _start(tmp_path, "workers: 1", port=taken.getsockname()[1])
        assert running.process.wait(timeout=30) == 1
    text = running.text()
    assert "cannot listen on" in text
    assert "listening on" not in text.replace("cannot listen on", "")


def test_one_worker_closes_a_silent_connection_after_header_timeout(tmp_path: Path) -> None:
    """Single-worker mode accepts through the same guard: a raw socket that sends nothing is
    closed after server.header_timeout; a prompt client is served."""
    running = _start(tmp_path, "workers: 1, header_timeout: 0.5")
    try:
        wait_for_port(running.port)
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b""  # closed by the server, nothing sent
            assert 0.3 < time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as prompt:
            prompt.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
            assert prompt.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        assert stop_server(running.process) == 0
    assert "stopped: drained" in running.text()


async def test_one_shared_socket_spreads_too(tmp_path: Path) -> None:
    """With `reuse_port: false` the workers share one listening socket; whichever wakes
    first accepts, and the hand-over evens it out just the same."""
    running = _start(tmp_path, "workers: 2, access_log: false, reuse_port: false")
    try:
        wait_for_port(running.port)
        await asyncio.to_thread(running.wait_serving, 2)
        for count in (4, 8):
            counts = await _open_and_count(running.port, count)
            assert len(counts) == 2, counts
            assert max(counts.values()) - min(counts.values()) <= 1, (count, counts)
            await _settled(running.port)
    finally:
        assert stop_server(running.process) == 0
