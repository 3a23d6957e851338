"""One serving process: the aiohttp application behind an :class:`Acceptor`, until SIGTERM.

SIGTERM or SIGINT stops accepting (the listener closes, siblings stop handing connections
over), lets requests in flight finish (up to ``server.request_timeout``), flushes pending
result-storage writes, closes clients, and logs what it drained and how long it took.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

from aiohttp import web

from thumbor_py import allocator
from thumbor_py.acceptor import Acceptor, Siblings
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.logs import AccessLogger

log = logging.getLogger("thumbor_py.server")


def run_worker(
    config: Config,
    listener: socket.socket,
    *,
    siblings: Siblings | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve on ``listener`` until SIGTERM/SIGINT; ``ready`` is called once serving."""
    tuned = allocator.tune(
        config.server.malloc_retain_bytes, arenas=config.server.render_threads + 2
    )
    with asyncio.Runner(loop_factory=loop_factory(config.server.event_loop)) as runner:
        runner.run(_serve(config, listener, siblings, ready, tuned))


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a worker runs: uvloop's (libuv, in C) or asyncio's own (``None``).

    uvloop cut server CPU per small image by about 8 % here (docs/performance.md): its
    transports, call_soon and thread wake-up (an eventfd, not a self-pipe) are in C.
    """
    if name == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


class _Responses:
    """Counts responses started, to tell at shutdown how many requests were still running."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, _request: web.Request, _response: web.StreamResponse) -> None:
        self.count += 1


async def _serve(
    config: Config,
    listener: socket.socket,
    siblings: Siblings | None,
    ready: Callable[[], None] | None,
    tuned: bool,
) -> None:
    settings = config.server
    app = create_app(config)
    acceptor = Acceptor(
        listener,
        header_timeout=settings.header_timeout,
        siblings=siblings,
        balance=settings.balance_connections,
    )
    app.middlewares.append(acceptor.middleware)  # innermost: counts requests in flight
    responses = _Responses()
    app.on_response_prepare.append(responses)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("thumbor_py.access") if settings.access_log else None,
        access_log_class=AccessLogger,
        keepalive_timeout=settings.keepalive_timeout,
        shutdown_timeout=settings.request_timeout,
    )
    await runner.setup()
    server = runner.server
    assert server is not None  # setup() made it
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    acceptor.start(server)
    cpus = os.sched_getaffinity(0)
    log.info(
        "worker %d serving (pid %d, %s event loop, %s, %s)",
        acceptor.slot,
        os.getpid(),
        config.server.event_loop,
        f"CPU {min(cpus)}" if len(cpus) == 1 else f"{len(cpus)} CPUs",
        f"allocator keeps {settings.malloc_retain_bytes / 2**20:g} MiB free per arena"
        if tuned
        else "allocator defaults",
    )
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        await _drain(runner, acceptor, responses)


async def _drain(runner: web.AppRunner, acceptor: Acceptor, responses: _Responses) -> None:
    started = time.monotonic()
    server = runner.server
    assert server is not None
    await acceptor.stop()
    connections = acceptor.open_connections
    running = server.requests_count - responses.count
    await runner.cleanup()
    log.info(
        "worker %s stopped: drained %d connection(s) and %d request(s) in flight in %.2f s "
        "(served %d requests; connections: %d accepted, %d handed to siblings, %d taken over)",
        acceptor.slot,
        connections,
        max(running, 0),
        time.monotonic() - started,
        server.requests_count,
        acceptor.accepted,
        acceptor.handed_over,
        acceptor.taken_over,
    )
