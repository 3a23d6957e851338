"""Server CPU per request for one workload, read from /proc (user + system, every thread of
every server process): the figure that holds on a shared machine, where wall time does not.

    .venv/bin/python bench/cpu.py tiny                    # 10x10/tiny.jpg, distinct URLs
    .venv/bin/python bench/cpu.py srcset --workers 2      # the cold srcset pass
    .venv/bin/python bench/cpu.py tiny --profile out.txt  # py-spy (if installed) on worker 0

The load generator runs in this process; its CPU is not counted. Each run starts a fresh
server, warms it with ``--warm`` requests of other URLs (imports, first-call costs), then
times ``--requests`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import images, servers
from bench.load import run_load
from bench.workloads import Workload, srcset_paths

CACHE = Path(__file__).resolve().parent / ".cache"


def _workload(name: str) -> Workload:
    if name == "healthcheck":  # the floor: aiohttp and the middlewares, no image
        return Workload(name, ("/healthcheck",), None)
    if name == "srcset":
        return Workload("srcset", srcset_paths(), None)
    path = {"tiny": "10x10/tiny.jpg", "blur": "200x200/filters:blur(3)/photo.jpg"}.get(name, name)
    return Workload(path, (f"/unsafe/{path}",), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", help="tiny, blur, srcset or a path like 100x100/tiny.jpg")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--imaging", default="{}", help="JSON merged into imaging")
    parser.add_argument("--server", default="{}", help="JSON merged into server")
    parser.add_argument("--thumbor", type=Path, help="measure Thumbor from this venv instead")
    parser.add_argument("--profile", type=Path, help="py-spy record worker 0 into this file")
    args = parser.parse_args()
    folder = CACHE / "images"
    images.generate(folder)
    workload = _workload(args.workload)
    srcset = args.workload == "srcset"
    imaging = {} if srcset else {"master_cache_bytes": 0}
    imaging.update(json.loads(args.imaging))
    text = servers.thumbor_py_config(
        folder,
        workers=args.workers,
        extra_imaging=imaging,
        extra_server=json.loads(args.server),
    )
    with (
        tempfile.TemporaryDirectory() as work,
        _server(args, folder, text, Path(work)) as server,
    ):
        if args.workload == "healthcheck":
            paths, warm, total = workload.paths, workload.paths, args.requests
        elif srcset:  # one cold pass: every URL once
            paths, warm, total = workload.paths, (), len(workload.paths)
        else:
            paths = workload.distinct(64)
            warm, total = paths, args.requests
        if warm:
            asyncio.run(run_load(server.port, warm, concurrency=args.connections, total=args.warm))
        spy = _profile(server, args.profile)
        before = server.cpu_seconds()
        threads_before = _threads_cpu(server)
        stats = asyncio.run(run_load(server.port, paths, concurrency=args.connections, total=total))
        cpu = server.cpu_seconds() - before
        threads = _threads_cpu(server)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
        counts = _decode_counts(server.port)
        rss = ", ".join(f"{value:.0f}" for value in server.rss_mib())
    per_thread = {
        name: 1000 * (seconds - threads_before.get(name, 0.0)) / max(stats.ok, 1)
        for name, seconds in threads.items()
    }
    print(
        f"{workload.name}: {stats.ok}/{stats.count} ok {stats.statuses}, {stats.rate:.0f} req/s, "
        f"server CPU {1000 * cpu / max(stats.ok, 1):.3f} ms/request "
        f"({cpu:.2f} s over {stats.elapsed:.2f} s; event-loop threads "
        f"{per_thread.get('main', 0.0):.3f} ms/request), RSS per worker MiB: {rss}"
    )
    print(f"  {counts}")
    print(
        "  CPU ms/request by thread: "
        + ", ".join(
            f"{name} {value:.3f}" for name, value in sorted(per_thread.items()) if value >= 0.001
        )
    )


def _server(
    args: argparse.Namespace, folder: Path, text: str, work: Path
) -> AbstractContextManager[servers.Server]:
    if args.thumbor is None:
        return servers.thumbor_py(text, work, workers=args.workers)
    conf = servers.thumbor_conf(folder)
    return servers.thumbor(args.thumbor, conf, work, processes=args.workers)


def _decode_counts(port: int) -> str:
    """Decodes and master-cache outcomes, from /metrics (all workers)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return "no /metrics"
    found = []
    for line in text.splitlines():
        if (
            line.startswith("thumbor_py_master_cache_total")
            or (
                line.startswith("thumbor_py_stage_seconds_count")
                and any(f'"{stage}"' in line for stage in ("decode", "share", "render", "load"))
            )
            or (
                line.startswith("thumbor_py_stage_seconds_sum")
                and any(f'"{stage}"' in line for stage in ("shared_wait", "queue_wait", "decode"))
            )
        ):
            found.append(line.split("{", 1)[1].replace('"', ""))
    return "; ".join(found)


def _threads_cpu(server: servers.Server) -> dict[str, float]:
    """CPU seconds per thread name (digits dropped, so a pool's threads add up), every
    thread of the server's processes: a process's first thread is ``main`` (a worker's event
    loop), and a supervisor's threads are named ``supervisor:...``."""
    workers = set(server.workers())
    found: dict[str, float] = {}
    for pid in server.pids():
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")].rstrip("0123456789_-")
            name = ("" if pid in workers else "supervisor:") + (
                "main" if task == str(pid) else name
            )
            fields = stat[stat.rindex(")") + 2 :].split()
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / servers.TICKS
    return found


def _profile(server: servers.Server, out: Path | None) -> subprocess.Popen[bytes] | None:
    if out is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    pid = server.workers()[0]
    command = [spy, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-t", "-r", "500"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
