"""The accept loop in-process: hand-over to the less loaded sibling, and the header timeout."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from thumbor_py.acceptor import Acceptor, Siblings
from thumbor_py.balancer import LoadTable, pick_sibling


@pytest.mark.parametrize(
    ("own", "siblings", "expected"),
    [
        pytest.param(0, [], None, id="alone"),
        pytest.param(0, [(1, 0)], None, id="tie-stays"),
        pytest.param(1, [(1, 0)], 1, id="one-more-moves"),
        pytest.param(3, [(1, 2), (2, 1)], 2, id="least-loaded-wins"),
        pytest.param(3, [(1, 3), (2, 4)], None, id="already-least"),
        pytest.param(5, [(2, 1), (1, 1)], 1, id="ties-by-slot"),
    ],
)
def test_pick_sibling(own: int, siblings: list[tuple[int, int]], expected: int | None) -> None:
    assert pick_sibling(own, siblings) == expected


def test_load_table_is_shared_with_forked_processes() -> None:
    import os

    table = LoadTable(2)
    pid = os.fork()
    if pid == 0:
        table.add_connections(1, 3)
        table.note_received(1, 0)
        table.set_alive(1, True)
        os._exit(0)
    os.waitpid(pid, 0)
    assert (table.connections(1), table.received(1, 0), table.alive(1)) == (3, 1, True)
    table.worker_died(1)
    assert (table.connections(1), table.alive(1), table.received(1, 0)) == (0, False, 1)


NAME_KEY = web.AppKey("name", str)


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text=request.app[NAME_KEY])


@asynccontextmanager
async def _worker(
    name: str, listener: socket.socket, siblings: Siblings | None, header_timeout: float = 5.0
) -> AsyncIterator[Acceptor]:
    app = web.Application()
    app[NAME_KEY] = name
    app.router.add_get("/", _hello)
    acceptor = Acceptor(listener, header_timeout=header_timeout, siblings=siblings)
    app.middlewares.append(acceptor.middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    acceptor.start(runner.server)
    try:
        yield acceptor
    finally:
        await acceptor.stop()
        await runner.cleanup()


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@pytest.fixture
def table() -> LoadTable:
    """Made outside the event loop, as the supervisor does (creating shared memory blocks)."""
    return LoadTable(2)


@pytest.fixture
def inboxes() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    for pair in pairs:
        for end in pair:
            end.setblocking(False)
    yield pairs
    for pair in pairs:
        for end in pair:
            end.close()


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return (await reader.readexactly(length)).decode()


async def test_connections_that_all_land_on_one_worker_are_spread(
    inboxes: list[tuple[socket.socket, socket.socket]], table: LoadTable
) -> None:
    """Every connection reaches worker A's socket; B gets half of them handed over."""
    outboxes = (inboxes[0][0], inboxes[1][0])
    busy, idle = _listener(), _listener()
    port = busy.getsockname()[1]
    async with (
        _worker("a", busy, Siblings(table, 0, inboxes[0][1], outboxes)) as a,
        _worker("b", idle, Siblings(table, 1, inboxes[1][1], outboxes)) as b,
    ):
        streams = []
        answers = []
        for _ in range(8):
            streams.append(await asyncio.open_connection("127.0.0.1", port))
            answers.append(await _get(*streams[-1]))
        for stream in streams:  # kept alive: each connection stays with the worker it reached
            answers.append(await _get(*stream))
        assert sorted(answers) == ["a"] * 8 + ["b"] * 8
        assert (a.open_connections, b.open_connections) == (4, 4)
        assert (table.connections(0), table.connections(1)) == (4, 4)
        assert (a.accepted, a.handed_over, b.taken_over) == (8, 4, 4)
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
        for _ in range(50):
            if table.connections(0) + table.connections(1) == 0:
                break
            await asyncio.sleep(0.02)
        assert (table.connections(0), table.connections(1)) == (0, 0)


async def test_a_dead_sibling_gets_nothing(
    inboxes: list[tuple[socket.socket, socket.socket]], table: LoadTable
) -> None:
    # slot 1 is never marked alive
    outboxes = (inboxes[0][0], inboxes[1][0])
    listener = _listener()
    port = listener.getsockname()[1]
    async with _worker("a", listener, Siblings(table, 0, inboxes[0][1], outboxes)) as a:
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        assert [await _get(*stream) for stream in streams] == ["a"] * 4
        assert (a.open_connections, a.handed_over) == (4, 0)
        for _, writer in streams:
            writer.close()


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), limit)
    assert data == b""
    return time.monotonic() - started


async def test_a_client_that_sends_nothing_is_disconnected_after_header_timeout() -> None:
    listener = _listener()
    port = listener.getsockname()[1]
    async with _worker("a", listener, None, header_timeout=0.5) as acceptor:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        waited = await _closed_after(reader, 5)
        assert 0.4 < waited < 2
        assert acceptor.open_connections == 0
        writer.close()


async def test_a_head_sent_byte_by_byte_is_cut_at_header_timeout() -> None:
    listener = _listener()
    port = listener.getsockname()[1]
    async with _worker("a", listener, None, header_timeout=0.6):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100
        sent = 0
        for byte in head:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            sent += 1
            await asyncio.sleep(0.05)
            if time.monotonic() - started > 3:
                break
        assert await _closed_after(reader, 3) < 3
        assert sent < len(head)  # cut before the head was complete
        writer.close()


async def test_a_prompt_client_may_then_idle_longer_than_header_timeout() -> None:
    listener = _listener()
    port = listener.getsockname()[1]
    async with _worker("a", listener, None, header_timeout=0.3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _get(reader, writer) == "a"
        await asyncio.sleep(0.8)  # idle keep-alive is bounded by keepalive_timeout instead
        assert await _get(reader, writer) == "a"
        writer.close()


async def test_a_connection_being_closed_weighs_less_than_new_ones(
    inboxes: list[tuple[socket.socket, socket.socket]], table: LoadTable
) -> None:
    """A client closes its old connection (idle, on A) as it opens two new ones (both reaching
    B): counting connections alone, B would keep both and A end up with none."""
    outboxes = (inboxes[0][0], inboxes[1][0])
    first, second = _listener(), _listener()
    async with (
        _worker("a", first, Siblings(table, 0, inboxes[0][1], outboxes)),
        _worker("b", second, Siblings(table, 1, inboxes[1][1], outboxes)),
    ):
        old = await asyncio.open_connection("127.0.0.1", first.getsockname()[1])
        assert await _get(*old) == "a"
        assert (table.load(0), table.load(1)) == (1, 0)  # idle: counted once
        port = second.getsockname()[1]
        new = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.1)
        old[1].close()
        answers = sorted([await _get(*stream) for stream in new])
        assert answers == ["a", "b"]
        for _, writer in new:
            writer.close()


def test_load_counts_busy_connections_twice() -> None:
    table = LoadTable(1)
    table.add_connections(0, 3)
    table.add_busy(0, 2)
    assert table.load(0) == 5
