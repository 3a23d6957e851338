"""The C allocator of a worker: keep image buffers in the heap instead of fresh mappings.

Pillow allocates an image's pixels with ``malloc`` in blocks of up to 16 MiB. glibc serves
a request that large with a fresh ``mmap`` (its threshold starts at 128 KiB and only drifts
up as mapped chunks are freed) and returns it to the kernel on ``free``; it also trims the
top of a heap as soon as 128 KiB there is free. So every decode, resize and encode of a
large image faults its buffers in page by page, and a render of a 12 MP JPEG takes about a
thousand minor page faults per output, several milliseconds of kernel time.

:func:`tune` asks glibc (``mallopt``) to serve requests up to 32 MiB (the most it allows)
from the heap and to keep up to ``retain_bytes`` of free memory at the top of each heap for
the next render, with at most ``arenas`` allocation arenas (the event loop's, the render
threads', one for the I/O threads). What a worker keeps between renders is so bounded by
``arenas * retain_bytes``. Measured (docs/performance.md): 5-9 % less server CPU on the
fit-in, WebP and PNG workloads, nothing either way on small images, and about 8-13 MiB more
RSS per worker on those workloads.

Other C libraries (musl, macOS) are left alone: :func:`tune` returns False.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems.
MMAP_THRESHOLD = 32 * 1024 * 1024


def glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (musl has mallopt, but none of these knobs)
    except (OSError, AttributeError):
        return None
    return libc


def tune(retain_bytes: int, *, arenas: int) -> bool:
    """Serve buffers up to 32 MiB from the heap and keep ``retain_bytes`` free per heap top,
    with at most ``arenas`` arenas. ``retain_bytes`` 0 changes nothing. True if applied."""
    libc = glibc() if retain_bytes > 0 else None
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    retain = min(retain_bytes, 2**31 - 1)
    settings = (
        (_M_ARENA_MAX, max(arenas, 1)),
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, retain),
    )
    applied = all([mallopt(parameter, value) == 1 for parameter, value in settings])
    if not applied:
        log.warning("the C allocator refused a setting; it keeps its defaults where it did")
    return applied
