"""Run the server: one process, or N pre-forked processes listening on one port.

Each process runs its own event loop and render threads, so CPU-bound renders use every core
without the GIL in the way. With ``server.reuse_port`` (the default, where the kernel has
SO_REUSEPORT) every worker gets its own listening socket on the port and the kernel hashes
each new connection to one of them, so keep-alive connections spread evenly; with one shared
socket, the worker that wakes first tends to accept a whole burst of connections and keep
them. One loop feeding a process pool was measured too (``bench/run.py``): it pays for
shipping every source and result between processes, for no gain.
SIGTERM or SIGINT stops accepting, lets requests in flight finish (up to
``server.request_timeout``), flushes pending result-storage writes and closes clients.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from types import FrameType

from thumbor_py.config import Config
from thumbor_py.metrics import MULTIPROC_ENV

log = logging.getLogger("thumbor_py.server")
_PR_SET_PDEATHSIG = 1


def worker_count(config: Config) -> int:
    """``server.workers``, with 0 meaning one per CPU available to this process."""
    if config.server.workers > 0:
        return config.server.workers
    return max(len(os.sched_getaffinity(0)), 1)


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket, created before forking so that workers inherit it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _prepare_metrics_folder() -> str | None:
    """Point prometheus_client at an empty samples folder (before any metric is used).

    Returns the folder when this process created it (and so removes it at exit).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        shutil.rmtree(given, ignore_errors=True)  # stale samples from a previous run
        os.makedirs(given, exist_ok=True)
        return None
    folder = tempfile.mkdtemp(prefix="thumbor-py-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    return folder


def _serve(config: Config, sock: socket.socket) -> None:
    from aiohttp import web

    from thumbor_py.app import create_app
    from thumbor_py.logs import AccessLogger

    web.run_app(
        create_app(config),
        sock=sock,
        access_log=logging.getLogger("thumbor_py.access") if config.server.access_log else None,
        access_log_class=AccessLogger,
        print=None,
        handle_signals=True,
        shutdown_timeout=config.server.request_timeout,
    )


def serve(config: Config) -> None:
    """Serve until SIGINT or SIGTERM; with several workers, supervise them."""
    count = worker_count(config)
    created = _prepare_metrics_folder() if count > 1 else None
    from thumbor_py.app import create_app

    create_app(config)  # resolve plugins and fail fast, before binding or forking
    sockets = _listening_sockets(config, count)
    if count == 1:
        _serve(config, sockets[0])
        return
    children: list[int] = []
    supervisor = os.getpid()
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                _die_with(supervisor)
                mine = sockets[index % len(sockets)]
                for other in sockets:
                    if other is not mine:
                        other.close()
                _serve(config, mine)
            finally:
                os._exit(0)
        children.append(pid)
    for sock in sockets:
        sock.close()
    _supervise(children, created)


def _die_with(supervisor: int) -> None:
    """Linux: have the kernel SIGTERM this worker when its supervisor dies, even by SIGKILL
    (otherwise orphaned workers would keep serving the port)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: nothing to ask for
        return
    if os.getppid() != supervisor:  # it died before the request took effect
        os._exit(0)


def _listening_sockets(config: Config, count: int) -> list[socket.socket]:
    """One socket per worker on one port (SO_REUSEPORT), or one socket they all share."""
    host, port = config.server.host, config.server.port
    if count == 1 or not (config.server.reuse_port and hasattr(socket, "SO_REUSEPORT")):
        return [bind_socket(host, port)]
    first = bind_socket(host, port, reuse_port=True)
    bound = first.getsockname()[1]  # the port the kernel chose when asked for 0
    return [first, *(bind_socket(host, bound, reuse_port=True) for _ in range(count - 1))]


def _supervise(children: list[int], created_folder: str | None) -> None:
    from thumbor_py.metrics import worker_exited

    def forward(signum: int, _frame: FrameType | None) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        worker_exited(pid)
        status = status or os.waitstatus_to_exitcode(code)
    if created_folder:
        shutil.rmtree(created_folder, ignore_errors=True)
    sys.exit(max(status, 0))
