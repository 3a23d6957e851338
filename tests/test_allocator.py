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


def _faults_per_image(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS_PER_IMAGE, mode],
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
    default = _faults_per_image("default")
    tuned = _faults_per_image("tuned")
    # A 12 MB image is about 3,000 pages: glibc maps and unmaps it every time by default.
    assert default > 2000
    assert tuned < default / 5


def test_zero_retain_bytes_leaves_the_allocator_alone() -> None:
    assert allocator.tune(0, arenas=3) is False
