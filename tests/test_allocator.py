"""The worker's allocator tuning: freed image buffers are reused instead of faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thumbor_py import allocator

# Renders images of a few sizes around 12 MP (a 2000x1500 master) and prints the minor page
# faults each one took, after one warm-up render.
_FAULTS_PER_IMAGE = """
import resource, sys
from PIL import Image
from thumbor_py import allocator

if sys.argv[1] == "tuned":
    assert allocator.tune(32 << 20, arenas=3)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
sizes = [(2000 + step, 1500) for step in range(9)]
Image.new("RGB", sizes[0], "red").resize((1000, 700))
before = faults()
for size in sizes[1:]:
    Image.new("RGB", size, "red").resize((1000, 700))
print((faults() - before) / (len(sizes) - 1))
"""


# Allocates 20 images of 12 MB, frees every other one (free memory inside the heap, below
# the ones still held, which trimming the heap's top cannot give back), and prints the RSS
# in MiB a second later.
_RSS_AFTER_FREEING_BETWEEN_HELD_IMAGES = """
import sys, time
from PIL import Image
from thumbor_py import allocator

assert allocator.tune(32 << 20, arenas=3, trim_every=float(sys.argv[1]))
images = [Image.new("RGB", (2000, 1500), "red") for _ in range(20)]
held = images[1::2]
del images
time.sleep(1.0)
with open("/proc/self/statm") as statm:
    print(int(statm.read().split()[1]) * 4096 / 2**20)
"""


def _run(script: str, argument: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", script, argument],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(done.stdout)


@pytest.mark.skipif(
    allocator.glibc() is None, reason="the tuning applies to glibc's allocator only"
)
def test_tuned_allocator_reuses_freed_image_buffers_instead_of_faulting_them_in() -> None:
    default = _run(_FAULTS_PER_IMAGE, "default")
    tuned = _run(_FAULTS_PER_IMAGE, "tuned")
    # A 12 MB image is about 3,000 pages: glibc maps and unmaps it every time by default.
    assert default > 2000
    assert tuned < default / 5


@pytest.mark.skipif(
    allocator.glibc() is None, reason="the tuning applies to glibc's allocator only"
)
def test_free_memory_inside_the_heap_goes_back_to_the_kernel_periodically() -> None:
    untrimmed = _run(_RSS_AFTER_FREEING_BETWEEN_HELD_IMAGES, "60")
    trimmed = _run(_RSS_AFTER_FREEING_BETWEEN_HELD_IMAGES, "0.2")
    # Ten 12 MB images were freed between ten still held: about 114 MiB to give back.
    assert untrimmed - trimmed > 80, (untrimmed, trimmed)


@pytest.mark.parametrize(
    ("environ", "left"),
    [
        pytest.param({}, set(), id="nothing-set"),
        pytest.param({"MALLOC_ARENA_MAX": "2"}, {"arenas"}, id="arena-variable"),
        pytest.param(
            {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=0"},
            {"mmap", "trim"},
            id="tunables",
        ),
        pytest.param({"MALLOC_TRIM_THRESHOLD_": "0"}, {"trim"}, id="trim-variable"),
    ],
)
def test_what_the_environment_sets_is_left_to_it(environ: dict[str, str], left: set[str]) -> None:
    names = {
        allocator.M_ARENA_MAX: "arenas",
        allocator.M_MMAP_THRESHOLD: "mmap",
        allocator.M_TRIM_THRESHOLD: "trim",
    }
    wanted = {names[parameter] for parameter, _ in allocator.parameters(1, arenas=3, environ={})}
    applied = allocator.parameters(1, arenas=3, environ=environ)
    assert {names[parameter] for parameter, _ in applied} == wanted - left


def test_zero_retain_bytes_leaves_the_allocator_alone() -> None:
    assert allocator.tune(0, arenas=3) is False
