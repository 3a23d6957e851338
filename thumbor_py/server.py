"""Run the server: one process, or N supervised pre-forked workers sharing one port.

Each worker runs its own event loop and render threads, so CPU-bound renders use every core
without the GIL in the way. With ``server.reuse_port`` (the default, where the kernel has
SO_REUSEPORT) every worker gets its own listening socket on the port and the kernel hashes
each new connection to one of them; otherwise they share one socket. Either way the kernel's
choice is only a first guess: with ``server.balance_connections`` a worker that holds more
connections than its least loaded sibling hands a new one over (``thumbor_py/acceptor.py``),
because a keep-alive connection stays where it lands and four of them hashed to one worker
would leave a core idle. One loop feeding a process pool was measured too (``bench/run.py``):
it pays for shipping every source and result between processes, for no gain.

The supervisor (``thumbor_py/supervisor.py``) restarts a worker that dies. SIGTERM or SIGINT
stops accepting, lets requests in flight finish (up to ``server.request_timeout``), flushes
pending result-storage writes and closes clients (``thumbor_py/worker.py``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence

from thumbor_py.config import Config
from thumbor_py.cpus import available_cpus, worker_cpus
from thumbor_py.metrics import MULTIPROC_ENV
from thumbor_py.shared_masters import FOLDER_ENV

log = logging.getLogger("thumbor_py.server")
_PR_SET_PDEATHSIG = 1
Banner = Callable[[str], Sequence[str]]


def worker_count(config: Config) -> int:
    """``server.workers``, with 0 meaning one per CPU this process may use (cgroup quota
    included)."""
    if config.server.workers > 0:
        return config.server.workers
    return available_cpus()


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


def _prepare_shared_masters(config: Config) -> str | None:
    """A private tmpfs folder for the masters the workers share (thumbor_py/shared_masters.py),
    handed to them through the environment; None when they share none."""
    imaging = config.imaging
    if imaging.master_cache_bytes <= 0 or imaging.shared_master_bytes <= 0:
        os.environ.pop(FOLDER_ENV, None)
        return None
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="thumbor-py-masters-", dir=base)  # mode 0700
    os.environ[FOLDER_ENV] = folder
    return folder


def serve(config: Config, *, banner: Banner | None = None) -> None:
    """Serve until SIGINT or SIGTERM; with several workers, supervise them.

    ``banner(base_url)`` gives extra lines (example URLs) logged once the port is bound.
    """
    count = worker_count(config)
    created = _prepare_metrics_folder() if count > 1 else None
    shared = _prepare_shared_masters(config) if count > 1 else None
    from thumbor_py.app import create_app

    create_app(config)  # resolve plugins and fail fast, before binding or forking
    sockets = _listening_sockets(config, count)
    _announce(config, sockets[0], count, banner)
    if count == 1:
        from thumbor_py.worker import run_worker

        run_worker(config, sockets[0])
        return
    try:
        status = _supervise(config, sockets, count)
    finally:
        for folder in (created, shared):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
    sys.exit(status)


def _announce(config: Config, sock: socket.socket, count: int, banner: Banner | None) -> None:
    host, port = sock.getsockname()[:2]
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    per_cpu = " (one per CPU)" if config.server.workers == 0 else ""
    log.info("thumbor-py listening on %s (workers: %d%s)", base, count, per_cpu)
    for line in banner(base) if banner is not None else ():
        log.info("%s", line)


def _supervise(config: Config, sockets: list[socket.socket], count: int) -> int:
    from thumbor_py.supervisor import Backoff, Supervisor

    workers = _Workers(config, sockets, count)
    supervisor = Supervisor(
        count,
        workers.start,
        backoff=Backoff(config.server.restart_delay, config.server.restart_delay_max),
        on_death=workers.died,
        on_stop=workers.stop_listening,
    )
    return supervisor.run()


class _Workers:
    """What the supervisor creates before forking and every worker inherits: the listening
    sockets, the load table and one inbox (a Unix datagram socket pair) per worker."""

    def __init__(self, config: Config, sockets: list[socket.socket], count: int) -> None:
        from thumbor_py.balancer import LoadTable

        self._config = config
        self._sockets = sockets
        self._table = LoadTable(count)
        self._inboxes = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        for pair in self._inboxes:
            for end in pair:
                end.setblocking(False)
        self._supervisor = os.getpid()
        self._cpus = worker_cpus(count) if config.server.pin_workers else None

    def start(self, slot: int) -> None:
        """In the forked worker: keep this slot's socket and inbox, close the rest, serve."""
        from thumbor_py.acceptor import Siblings
        from thumbor_py.worker import run_worker

        _die_with(self._supervisor)
        if self._cpus is not None:  # before any thread starts: they all inherit it
            os.sched_setaffinity(0, {self._cpus[slot]})
        mine = self._sockets[slot % len(self._sockets)]
        for other in self._sockets:
            if other is not mine:
                other.close()
        for index, (_, inbox) in enumerate(self._inboxes):
            if index != slot:
                inbox.close()
        outboxes = tuple(pair[0] for pair in self._inboxes)
        siblings = Siblings(self._table, slot, self._inboxes[slot][1], outboxes)
        run_worker(self._config, mine, siblings=siblings)

    def died(self, slot: int, pid: int) -> None:
        """In the supervisor: forget a dead worker's connections and live gauges."""
        from thumbor_py.metrics import worker_exited

        self._table.worker_died(slot)
        worker_exited(pid)

    def stop_listening(self) -> None:
        """Workers close their copies as they stop; once the supervisor's are closed too, new
        connections are refused instead of waiting in a backlog nobody will accept from."""
        for sock in self._sockets:
            sock.close()


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
