"""Start and stop the servers under test, and account their CPU time and memory from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
THUMBOR_VERSION = "7.8.0"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its port and the process group that holds all of its processes."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    others: tuple[subprocess.Popen[bytes], ...] = ()  # more instances (SO_REUSEPORT)

    def pids(self) -> list[int]:
        """The server's processes: the ones we started and all of their descendants."""
        found = [self.process.pid, *(other.pid for other in self.others)]
        index = 0
        while index < len(found):
            found += _children(found[index])
            index += 1
        return found

    def workers(self) -> list[int]:
        """The processes that serve requests (a supervisor only forwards signals)."""
        pids = self.pids()
        return pids[1:] if len(pids) > 1 and not self.others else pids

    def cpu_seconds(self) -> float:
        """User + system CPU of every process of the server so far."""
        return sum(_cpu(pid) for pid in self.pids())

    def rss_mib(self) -> list[float]:
        """Resident memory of each worker process, in MiB."""
        return [_rss_kib(pid) / 1024 for pid in self.workers()]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(child) for child in text.split()]
    except OSError:
        pass
    return found


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    return _cpu(pid)


def _cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat; the slice starts at field 3.
    return (int(fields[11]) + int(fields[12])) / TICKS


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait_ready(server: Server, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/healthcheck"
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def _running(name: str, command: list[str], port: int, log: Path, expect: int) -> Iterator[Server]:
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        server = Server(name, port, process)
        try:
            _wait_ready(server, log)
            deadline = time.monotonic() + 20
            while len(server.pids()) < expect and time.monotonic() < deadline:
                time.sleep(0.1)
            yield server
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we created (the server and its forked workers)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    # Forked children may outlive the leader for a moment; the group goes with them.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def thumbor_py_config(
    images: Path,
    *,
    workers: int,
    result_storage: Path | None = None,
    extra_server: dict[str, object] | None = None,
    extra_imaging: dict[str, object] | None = None,
) -> str:
    """A YAML config equivalent to :func:`thumbor_conf`."""
    import yaml

    config: dict[str, object] = {
        "server": {"workers": workers, "access_log": False, **(extra_server or {})},
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": str(images)}},
        "imaging": {"detectors": [], **(extra_imaging or {})},
    }
    if result_storage is not None:
        config["result_storage"] = {
            "use": "file",
            "settings": {"root": str(result_storage)},
            "store_unsafe": True,
        }
    return yaml.safe_dump(config)


@contextmanager
def thumbor_py(config_text: str, work: Path, *, workers: int, tag: str = "") -> Iterator[Server]:
    """thumbor-py from this checkout, with the given YAML config."""
    port = free_port()
    name = f"thumbor-py{tag}"
    config = work / f"{name}.yaml"
    config.write_text(config_text)
    command = [str(PYTHON), "-m", "thumbor_py", "serve", "--config", str(config)]
    command += ["--port", str(port)]
    env_log = work / f"{name}.log"
    expect = workers + 1 if workers > 1 else 1
    with _running(name, command, port, env_log, expect) as server:
        yield server


def thumbor_conf(images: Path, result_storage: Path | None = None) -> str:
    """Thumbor 7.8 settings equivalent to :func:`thumbor_py_config`."""
    settings: dict[str, object] = {
        "LOADER": "thumbor.loaders.file_loader",
        "FILE_LOADER_ROOT_PATH": str(images),
        "STORAGE": "thumbor.storages.no_storage",
        "RESULT_STORAGE": None,
        "ALLOW_UNSAFE_URL": True,
        "SECURITY_KEY": "bench",
        "RESPECT_ORIENTATION": True,
        "DETECTORS": [],
        "QUALITY": 80,
    }
    if result_storage is not None:
        settings["RESULT_STORAGE"] = "thumbor.result_storages.file_storage"
        settings["RESULT_STORAGE_FILE_STORAGE_ROOT_PATH"] = str(result_storage)
        settings["RESULT_STORAGE_STORES_UNSAFE"] = True
    return "".join(f"{key} = {value!r}\n" for key, value in settings.items())


@contextmanager
def thumbor(
    venv: Path, conf_text: str, work: Path, *, processes: int, tag: str = "", fork: bool = False
) -> Iterator[Server]:
    """Thumbor from ``venv`` on every core: ``processes`` instances, each on its own socket
    bound to one port with SO_REUSEPORT (the kernel spreads connections evenly), or with
    ``fork``, ``thumbor --processes N`` (forked processes sharing one socket: with
    keep-alive clients, one process tends to accept every connection and the other idles).
    """
    name = f"thumbor{tag}"
    conf = work / f"{name}.conf"
    conf.write_text(conf_text)
    base = [str(venv / "bin" / "thumbor"), "-c", str(conf), "-l", "warning"]
    log = work / f"{name}.log"
    if fork or processes == 1:
        port = free_port()
        command = [*base, "-p", str(port), "-i", "127.0.0.1", "--processes", str(processes)]
        expect = processes + 1 if processes > 1 else 1
        with _running(name, command, port, log, expect) as server:
            yield server
        return
    port, sockets = _reuseport_sockets(processes)
    with log.open("wb") as log_file:
        started: list[subprocess.Popen[bytes]] = []
        try:
            for sock in sockets:
                command = [*base, "-f", str(sock.fileno())]
                started.append(
                    subprocess.Popen(
                        command,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        pass_fds=(sock.fileno(),),
                        process_group=started[0].pid if started else 0,  # one group to stop
                    )
                )
                sock.close()
            server = Server(name, port, started[0], tuple(started[1:]))
            _wait_ready(server, log)
            yield server
        finally:
            for sock in sockets:
                sock.close()
            if started:
                _stop(started[0])


def _reuseport_sockets(count: int) -> tuple[int, list[socket.socket]]:
    sockets: list[socket.socket] = []
    port = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        sockets.append(sock)
    return port, sockets


def ensure_thumbor(venv: Path, *, create: bool) -> Path | None:
    """The Thumbor virtualenv, created with ``pip install thumbor==7.8.0`` when asked."""
    if (venv / "bin" / "thumbor").exists():
        return venv
    if not create:
        return None
    print(f"creating {venv} with thumbor=={THUMBOR_VERSION} (one-off, a few minutes)...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet"]
    subprocess.run([*pip, f"thumbor=={THUMBOR_VERSION}"], check=True)
    return venv


@contextmanager
def process_pool_model(config_text: str, work: Path, *, processes: int) -> Iterator[Server]:
    """The alternative worker model: one event loop handing renders to a process pool."""
    port = free_port()
    config = work / "process-pool.yaml"
    config.write_text(config_text)
    command = [str(PYTHON), str(ROOT / "bench" / "process_pool.py"), str(config), str(port)]
    command += [str(processes)]
    with _running(
        "process-pool", command, port, work / "process-pool.log", processes + 1
    ) as server:
        yield server
