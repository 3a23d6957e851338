"""How many CPUs this process may use: its affinity, capped by a container's CPU quota.

``os.cpu_count()`` is the host's count; on a large Kubernetes node with a 2-CPU limit that
would fork one worker per host CPU. The quota comes from cgroup v2 (``cpu.max``: ``"max
100000"`` or ``"200000 100000"``) or cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``,
-1 meaning none), read for this process's cgroup and every ancestor (the tightest wins),
rounded up, at least 1 and at most the affinity count.

:func:`worker_cpus` decides whether each worker gets a CPU of its own
(``server.pin_workers``): only with exactly one worker per allowed CPU and no quota below
that, so the server owns those CPUs and pinning cannot leave a worker waiting for a busy one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def available_cpus(
    *,
    root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    affinity: int | None = None,
) -> int:
    """CPUs this process may keep busy: ``ceil(quota / period)`` capped by its affinity."""
    allowed = affinity if affinity is not None else len(os.sched_getaffinity(0))
    quota = cpu_quota(root=root, proc_cgroup=proc_cgroup)
    if quota is None:
        return max(allowed, 1)
    return max(1, min(allowed, math.ceil(quota)))


def worker_cpus(
    workers: int,
    *,
    root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    allowed: set[int] | None = None,
) -> list[int] | None:
    """The CPU each of ``workers`` workers is pinned to (worker ``i`` to the ``i``-th), or
    None to leave them to the scheduler: one worker, a count other than the allowed CPUs'
    (the operator chose another layout), or a quota below them (a 2-CPU limit on a 64-CPU
    node: the kernel must be free to run the workers anywhere)."""
    cpus = sorted(allowed if allowed is not None else os.sched_getaffinity(0))
    if workers < 2 or workers != len(cpus):
        return None
    quota = cpu_quota(root=root, proc_cgroup=proc_cgroup)
    if quota is not None and quota < len(cpus):
        return None
    return cpus


def cpu_quota(*, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The tightest CPU quota over this process's cgroups, in CPUs, or None when unlimited."""
    found = [q for folder in _cgroup_folders(root, proc_cgroup) if (q := _quota(folder))]
    return min(found) if found else None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """The process's cgroup folders (v2 unified and v1 ``cpu``), each with its ancestors."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    bases: list[tuple[Path, str]] = [(root, "/")]
    for line in lines:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if controllers == "":
            bases.append((root, path))
        elif "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                bases.append((root / mount, path))
    folders: list[Path] = []
    for base, path in bases:
        relative = PurePosixPath(path or "/").relative_to("/")
        folder = base / relative
        folders.append(folder)
        folders.extend(base / parent for parent in relative.parents)
    return list(dict.fromkeys(folders))


def _quota(folder: Path) -> float | None:
    v2 = _read(folder / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2 and fields[0] != "max":
            return _ratio(fields[0], fields[1])
        return None
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota is not None and period is not None:
        return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        value, length = int(quota), int(period)
    except ValueError:
        return None
    return value / length if value > 0 and length > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
