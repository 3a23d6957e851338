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
threads', one for the I/O threads): at most ``arenas * retain_bytes`` kept at the heaps'
tops. Free memory left *inside* a heap (a transient buffer freed below a long-lived one, such
as a cached master) is handed back to the kernel every ``trim_every`` seconds by
``malloc_trim`` from a small thread, so it cannot pile up between the cache's entries.

Measured (docs/performance.md): 5-9 % less server CPU on the fit-in, WebP and PNG workloads,
nothing either way on small images; RSS per worker 8-13 MiB higher after a run of one of
those workloads, and lower than with glibc's defaults over a long mixed run (the periodic
trim also returns what glibc itself would have kept).

Other C libraries (musl, macOS) are left alone: :func:`tune` returns False.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems.
MMAP_THRESHOLD = 32 * 1024 * 1024
# How often a worker hands free memory inside its heaps back to the kernel.
TRIM_EVERY = 10.0
# The environment variable and the GLIBC_TUNABLES name through which an operator may have
# set each parameter already: theirs wins.
_OPERATOR_NAMES = {
    M_ARENA_MAX: ("MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
    M_MMAP_THRESHOLD: ("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
    M_TRIM_THRESHOLD: ("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
}


def glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (musl has mallopt, but none of these knobs)
    except (OSError, AttributeError):
        return None
    return libc


def tune(
    retain_bytes: int,
    *,
    arenas: int,
    trim_every: float = TRIM_EVERY,
    environ: Mapping[str, str] = os.environ,
) -> bool:
    """Serve buffers up to 32 MiB from the heap, keep ``retain_bytes`` free per heap top, with
    at most ``arenas`` arenas, and give free pages inside the heaps back every ``trim_every``
    seconds. A parameter the environment sets (``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``...)
    is left as it is. ``retain_bytes`` 0 changes nothing. True if applied."""
    libc = glibc() if retain_bytes > 0 else None
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    retain = min(retain_bytes, 2**31 - 1)
    settings = parameters(retain, arenas=arenas, environ=environ)
    if not all([mallopt(parameter, value) == 1 for parameter, value in settings]):
        log.warning("the C allocator refused a setting; it keeps its defaults where it did")
        return False
    _trim_periodically(libc, retain, trim_every)
    return True


def parameters(
    retain_bytes: int, *, arenas: int, environ: Mapping[str, str]
) -> list[tuple[int, int]]:
    """The ``mallopt`` calls :func:`tune` makes: (parameter, value), except those the
    environment already sets."""
    wanted = {
        M_ARENA_MAX: max(arenas, 1),
        M_MMAP_THRESHOLD: MMAP_THRESHOLD,
        M_TRIM_THRESHOLD: retain_bytes,
    }
    tunables = environ.get("GLIBC_TUNABLES", "")
    return [
        (parameter, value)
        for parameter, value in wanted.items()
        if _OPERATOR_NAMES[parameter][0] not in environ
        and _OPERATOR_NAMES[parameter][1] not in tunables
    ]


def _trim_periodically(libc: ctypes.CDLL, pad: int, every: float) -> None:
    """A daemon thread that calls ``malloc_trim(pad)`` every ``every`` seconds: it releases
    every whole free page of every arena (``MADV_DONTNEED``) and keeps ``pad`` bytes at the
    top of the main heap. ctypes releases the GIL for the call."""
    trim = libc.malloc_trim
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int

    def run() -> None:
        while True:
            time.sleep(every)
            trim(pad)

    threading.Thread(target=run, name="thumbor-py-malloc-trim", daemon=True).start()
