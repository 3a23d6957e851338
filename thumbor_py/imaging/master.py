"""Fetch once, render many: a bounded cache of decoded, downscaled "masters" of sources.

A master is a source decoded once, upright and in a normalised mode, at the smallest JPEG
DCT scale that keeps ``imaging.master_size`` pixels along its longer side (other formats are
decoded whole and reduced by an integer factor). Every later size of that source (a
``srcset``: 320, 640, … 1920 wide) is cut from the master instead of fetching and decoding
the original again: the master is reduced by the largest integer factor that still holds
every output pixel (what JPEG drafting would have done) and the usual Lanczos pass follows,
so outputs stay within a few grey levels of a direct render.

The cache is per process, bounded by bytes (``imaging.master_cache_bytes``, least recently
used first out) and by age (``imaging.master_ttl``, so a changed source shows within it).
Masters are shared between render threads and never modified: renders get a read-only view,
and Pillow copies a read-only image before any in-place change.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageFile

from thumbor_py import metrics
from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import formats

# How a render gets its pixels: the opened source and the smallest size it needs (None: all).
PixelLoader = Callable[[formats.Opened, tuple[int, int] | None], Image.Image]
_DCT_SCALES = (8, 4, 2)
# Bytes per pixel as Pillow stores each normalised mode (RGB is padded to four bytes).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1}
# Palette images are resampled as true colour later; reduce() does not take them.
_UNREDUCIBLE = frozenset({"1", "P"})


@dataclass(frozen=True, slots=True)
class SourceStamp:
    """When the bytes being decoded were loaded (epoch seconds) and their version."""

    loaded_at: float
    version: str | None


# Set by the pipeline around a render from source bytes; a master decoded there carries it.
SOURCE_STAMP: contextvars.ContextVar[SourceStamp | None] = contextvars.ContextVar(
    "thumbor_py_source_stamp", default=None
)


class MasterTooSmallError(Exception):
    """The master has fewer pixels than a request needs: render from the source instead."""


@dataclass(frozen=True, slots=True)
class Master:
    """A decoded source kept for the next sizes: its pixels and its header."""

    image: Image.Image
    header: formats.Opened
    scale: int  # the source is ``scale`` times larger (a JPEG DCT scale, or a reduction)
    nbytes: int
    created: float
    loaded_at: float = 0.0  # epoch seconds: when its source bytes were loaded
    version: str | None = None  # the source's version (ETag, size+mtime)

    @property
    def opened(self) -> formats.Opened:
        """The source's header with the master as its (already upright) image."""
        return formats.Opened(
            image=self.image,
            format=self.header.format,
            size=self.header.size,
            oriented_size=self.header.oriented_size,
            orientation=1,
            frames=1,
            mode=self.header.mode,
        )

    def pixels(self, _opened: formats.Opened, need: tuple[int, int] | None) -> Image.Image:
        """Pixels for a render that needs ``need`` (None: the whole source), as a direct
        decode would have them: for a JPEG, the master reduced to the DCT scale drafting
        would have picked; raises when the master has fewer pixels than that."""
        full = self.header.oriented_size
        width, height = need or full
        short = self.image.width < width or self.image.height < height
        if short and self.image.size != full:
            raise MasterTooSmallError(f"master {self.image.size} < needed {need}")
        factor = 1
        if self.header.format == "JPEG" and need is not None:
            factor = max(_draft_scale(full, need) // self.scale, 1)
        if factor >= 2 and self.image.mode not in _UNREDUCIBLE:
            return self.image.reduce(factor)
        view = self.image._new(self.image.im)  # shares the pixels, no copy
        view.readonly = 1  # so Pillow copies before any in-place change
        return view


def _draft_scale(size: tuple[int, int], need: tuple[int, int]) -> int:
    """The DCT scale Pillow's ``draft`` picks to decode ``size`` for ``need``."""
    ratio = min(size[0] // max(need[0], 1), size[1] // max(need[1], 1))
    return next((scale for scale in (*_DCT_SCALES, 1) if ratio >= scale), 1)


class MasterCache:
    """Masters by source key, least recently used first out, bounded by bytes and age."""

    def __init__(self, *, max_bytes: int, master_size: int, ttl: float) -> None:
        self._max_bytes = max_bytes
        self._master_size = master_size
        self._ttl = ttl
        self._entries: OrderedDict[str, Master] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ImagingConfig) -> MasterCache | None:
        """The cache ``config`` asks for, or None when ``master_cache_bytes`` is 0."""
        if config.master_cache_bytes <= 0:
            return None
        return cls(
            max_bytes=config.master_cache_bytes,
            master_size=config.master_size,
            ttl=config.master_ttl,
        )

    @property
    def nbytes(self) -> int:
        """Pixel bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Master | None:
        """The master of ``key`` (and count a hit), or None (and count a miss)."""
        with self._lock:
            master = self._entries.get(key)
            if master is not None and time.monotonic() - master.created > self._ttl:
                self._drop(key)
                master = None
            if master is not None:
                self._entries.move_to_end(key)
        metrics.MASTER_CACHE.labels(outcome="hit" if master else "miss").inc()
        return master

    def peek(self, key: str) -> Master | None:
        """The fresh master of ``key``, if any, without counting a hit or a miss."""
        with self._lock:
            master = self._entries.get(key)
        if master is None or time.monotonic() - master.created > self._ttl:
            return None
        return master

    def loader(self, key: str) -> PixelLoader:
        """A pixel loader that decodes the source as a master of ``key`` and keeps it, when
        the master would hold what this render needs; otherwise a plain decode."""

        def load(opened: formats.Opened, need: tuple[int, int] | None) -> Image.Image:
            if opened.animated:
                return formats.load_pixels(opened, need)
            cached, stamp = self.peek(key), SOURCE_STAMP.get()
            if cached is not None and stamp is not None and cached.version != stamp.version:
                cached = None  # a master of another version of these bytes
            if cached is not None:  # rendering from the bytes anyway (smart detection needs them)
                try:
                    return cached.pixels(opened, need)
                except MasterTooSmallError:
                    return formats.load_pixels(opened, need)
            scale = self._scale(opened)
            full = opened.oriented_size
            covered = need or full
            if _ceil_div(full[0], scale) < covered[0] or _ceil_div(full[1], scale) < covered[1]:
                return formats.load_pixels(opened, need)  # this render needs more pixels
            master = self._decode(opened, scale)
            self.put(key, master)
            return master.pixels(opened, need)

        return load

    def _scale(self, opened: formats.Opened) -> int:
        """The master's reduction of ``opened``: as much as keeps ``master_size`` pixels
        along the longer side, in JPEG DCT steps for JPEGs."""
        longest = max(opened.oriented_size)
        if opened.mode in _UNREDUCIBLE:
            return 1
        if opened.format == "JPEG":
            return next((s for s in _DCT_SCALES if longest / s >= self._master_size), 1)
        return max(longest // self._master_size, 1)

    def _decode(self, opened: formats.Opened, scale: int) -> Master:
        width, height = opened.oriented_size
        jpeg = opened.format == "JPEG"
        # Asking for the floor makes Pillow pick exactly this DCT scale (it rounds up).
        draft = (width // scale, height // scale) if jpeg else None
        image = formats.normalize_mode(formats.load_pixels(opened, draft))
        if scale > 1 and not jpeg and image.mode not in _UNREDUCIBLE:
            image = image.reduce(scale)
        if isinstance(image, ImageFile.ImageFile):
            image = image._new(image.im)  # the pixels only: let the source's bytes go
        header = dataclasses.replace(opened, image=image)
        per_pixel = _PIXEL_BYTES.get(image.mode, 4)
        nbytes = image.width * image.height * per_pixel
        stamp = SOURCE_STAMP.get() or SourceStamp(0.0, None)
        return Master(
            image, header, scale, nbytes, time.monotonic(), stamp.loaded_at, stamp.version
        )

    def put(self, key: str, master: Master) -> bool:
        """Keep ``master`` (evicting the least recently used); False when it alone is over
        the budget."""
        if master.nbytes > self._max_bytes:
            return False
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = master
            self._bytes += master.nbytes
            evicted = 0
            while self._bytes > self._max_bytes:
                oldest = next(iter(self._entries))
                self._drop(oldest)
                evicted += 1
            metrics.MASTER_CACHE_BYTES.set(self._bytes)
        metrics.MASTER_CACHE.labels(outcome="store").inc()
        if evicted:
            metrics.MASTER_CACHE.labels(outcome="evict").inc(evicted)
        return True

    def discard(self, key: str) -> None:
        """Forget the master of ``key`` (a purge or a changed source made it stale)."""
        with self._lock:
            if key in self._entries:
                self._drop(key)
            metrics.MASTER_CACHE_BYTES.set(self._bytes)

    def _drop(self, key: str) -> None:
        master = self._entries.pop(key)
        self._bytes -= master.nbytes


def _ceil_div(value: int, divisor: int) -> int:
    """``ceil(value / divisor)`` for positive integers, as JPEG DCT scaling rounds."""
    return -(-value // divisor)
