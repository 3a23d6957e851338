"""``workers: 0`` counts the container's CPU quota (cgroup v2 and v1), from fake cgroup files."""

from __future__ import annotations

from pathlib import Path

import pytest

from thumbor_py.cpus import available_cpus, cpu_quota, worker_cpus


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("proc", "files", "affinity", "expected"),
    [
        pytest.param("0::/\n", {"cpu.max": "200000 100000\n"}, 64, 2, id="v2-two-cpus"),
        pytest.param("0::/\n", {"cpu.max": "150000 100000\n"}, 64, 2, id="v2-rounded-up"),
        pytest.param("0::/\n", {"cpu.max": "50000 100000\n"}, 64, 1, id="v2-at-least-one"),
        pytest.param("0::/\n", {"cpu.max": "max 100000\n"}, 8, 8, id="v2-unlimited"),
        pytest.param("0::/\n", {"cpu.max": "800000 100000\n"}, 4, 4, id="v2-capped-by-affinity"),
        pytest.param(
            "0::/kubepods/pod1/c1\n",
            {"kubepods/pod1/cpu.max": "300000 100000", "kubepods/pod1/c1/cpu.max": "max 100000"},
            64,
            3,
            id="v2-ancestor-limit",
        ),
        pytest.param(
            "4:cpu,cpuacct:/docker/abc\n",
            {
                "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000",
                "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
            },
            64,
            3,
            id="v1-quota",
        ),
        pytest.param(
            "1:cpu:/\n",
            {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"},
            6,
            6,
            id="v1-unlimited",
        ),
        pytest.param("", {}, 3, 3, id="no-cgroup-files"),
    ],
)
def test_available_cpus(
    tmp_path: Path, proc: str, files: dict[str, str], affinity: int, expected: int
) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    _tree(root, files)
    proc_file = tmp_path / "proc-self-cgroup"
    proc_file.write_text(proc)
    assert available_cpus(root=root, proc_cgroup=proc_file, affinity=affinity) == expected


def test_the_tightest_limit_wins(tmp_path: Path) -> None:
    _tree(tmp_path, {"cpu.max": "400000 100000", "a/cpu.max": "120000 100000"})
    proc = tmp_path / "proc"
    proc.write_text("0::/a\n")
    assert cpu_quota(root=tmp_path, proc_cgroup=proc) == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("workers", "allowed", "quota", "expected"),
    [
        pytest.param(2, {0, 1}, None, [0, 1], id="one-worker-per-cpu"),
        pytest.param(3, {5, 2, 9}, None, [2, 5, 9], id="the-allowed-cpus-in-order"),
        pytest.param(4, {0, 1, 2, 3}, "400000 100000", [0, 1, 2, 3], id="quota-covers-them"),
        pytest.param(2, {0, 1, 2, 3}, None, None, id="fewer-workers-than-cpus"),
        pytest.param(4, {0, 1}, None, None, id="more-workers-than-cpus"),
        pytest.param(1, {0}, None, None, id="one-worker"),
        pytest.param(4, {0, 1, 2, 3}, "200000 100000", None, id="quota-below-the-cpus"),
    ],
)
def test_worker_cpus_pin_only_a_server_that_owns_its_cpus(
    tmp_path: Path, workers: int, allowed: set[int], quota: str | None, expected: list[int] | None
) -> None:
    _tree(tmp_path, {"cpu.max": quota or "max 100000"})
    proc = tmp_path / "proc"
    proc.write_text("0::/\n")
    assert worker_cpus(workers, root=tmp_path, proc_cgroup=proc, allowed=allowed) == expected
