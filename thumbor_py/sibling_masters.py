"""How a worker gets a master through the shared folder (:mod:`thumbor_py.shared_masters`):
take a sibling's, or decode it here under a claim, or wait while a sibling decodes it.

The look-ups run on an I/O thread (they open files); the claim is taken on the render
thread right before the decode, so a claim is only held by a decode that runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

from thumbor_py import metrics
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.transform import Renderer
from thumbor_py.shared_masters import SharedMasters

log = logging.getLogger("thumbor_py.pipeline")
# How often a worker waiting for a sibling's decode looks for the master: often (a look is
# two system calls on a thread), slowing down a little for long decodes.
POLL = 0.003
POLL_MAX = 0.02

# Runs a thread job that decodes the loaded source (None: a sibling claimed it first).
DecodeHere = Callable[[Callable[[PixelSource], PixelSource | None]], Awaitable[PixelSource | None]]


async def shared_or_decoded(
    shared: SharedMasters,
    identity: str,
    renderer: Renderer,
    *,
    io: Executor | None,
    usable: Callable[[PixelSource], Awaitable[bool]],
    decode: DecodeHere,
) -> PixelSource:
    """A sibling's master of ``identity`` while ``usable`` (cache coherence) accepts it (a
    stale one is removed); else this worker's decode, published for the siblings; while a
    sibling's decode runs, wait for its master (the render threads stay free)."""
    loop = asyncio.get_running_loop()
    delay = POLL
    while True:
        try:
            found, free = await loop.run_in_executor(io, shared.peek, identity)
        except OSError as exc:  # the folder is gone: decode here
            log.warning("shared masters unavailable (%s); decoding locally", exc)
            decoded = await decode(renderer.with_master)
            assert decoded is not None  # with_master always decodes
            return decoded
        if found is not None:
            if await usable(found):
                metrics.MASTER_CACHE.labels(outcome="shared").inc()
                return found
            await loop.run_in_executor(io, shared.discard, identity)
            continue
        if free:
            decoded = await decode(functools.partial(decode_and_share, renderer, shared))
            if decoded is not None:
                return decoded
        await asyncio.sleep(delay)  # a sibling is decoding it
        delay = min(delay * 1.25, POLL_MAX)


def decode_and_share(
    renderer: Renderer, shared: SharedMasters, source: PixelSource
) -> PixelSource | None:
    """On a render thread, right before decoding: claim the source, decode its master,
    publish it for the siblings, release. None when a sibling claimed it first."""
    try:
        claim = shared.claim(source.identity)
    except OSError as exc:  # the folder is gone: decode without sharing
        log.warning("shared masters unavailable (%s); decoding locally", exc)
        return renderer.with_master(source)
    if claim is None:
        return None
    try:
        decoded = renderer.with_master(source)
        with metrics.timed("share"):
            try:
                shared.publish(decoded)
            except OSError as exc:  # a full tmpfs: the siblings decode for themselves
                log.warning("could not share the master of %s: %s", source.identity, exc)
        return decoded
    finally:
        claim.release()
