"""Fetch once, render many: a bounded cache of decoded, downscaled "masters" of sources.

A master is a source decoded once, upright and in a normalised mode, at the smallest JPEG
DCT scale that keeps ``imaging.master_size`` pixels along its longer side (other formats are
decoded whole and reduced by an integer factor). Every later size of that source (a
``srcset``: 320, 640, … 1920 wide) is cut from the master instead of fetching and decoding
the original again: the master is reduced by the largest integer factor that still holds
every output pixel (what JPEG drafting would have done) and the usual Lanczos pass follows,
so outputs stay within a few grey levels of a direct render.

A render reads a :class:`PixelSource`: the source's bytes, with its master when one is
cached. The cache keeps the two together, so a render the master cannot serve (a size larger
than the master, a debug or trim render that needs every pixel, detection that wants the
full image) decodes the bytes within the same render. The pipeline looks the cache up and
fills it; the cache is per process, bounded by bytes (``imaging.master_cache_bytes``, the
encoded sources and the master pixels together, least recently used first out) and by age
(``imaging.master_ttl``); the pipeline also drops a source that cache coherence finds
purged or changed (:mod:`thumbor_py.coherence`). Masters are shared between
render threads and never modified: renders get a read-only view, and Pillow copies a
read-only image before any in-place change.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageFile

from thumbor_py.imaging import formats

# How a render gets its pixels: the opened source and the smallest size it needs (None: all).
PixelLoader = Callable[[formats.Opened, tuple[int, int] | None], Image.Image]
_DCT_SCALES = (8, 4, 2)
# Bytes per pixel as Pillow stores each normalised mode (RGB is padded to four bytes).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1}
# Palette images are resampled as true colour later; reduce() does not take them.
_UNREDUCIBLE = frozenset({"1", "P"})


@dataclass(frozen=True, slots=True)
class Master:
    """A decoded source kept for the next sizes: its pixels and its header."""

    image: Image.Image
    header: formats.Opened
    scale: int  # the source is ``scale`` times larger (a JPEG DCT scale, or a reduction)
    nbytes: int
    created: float

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

    def covers(self, need: tuple[int, int] | None) -> bool:
        """Whether the master holds every pixel a render needing ``need`` (None: the whole
        source) uses."""
        full = self.header.oriented_size
        width, height = need or full
        short = self.image.width < width or self.image.height < height
        return not short or self.image.size == full

    def pixels(self, _opened: formats.Opened, need: tuple[int, int] | None) -> Image.Image:
        """Pixels for a render that needs ``need`` (None: the whole source), as a direct
        decode would have them: for a JPEG, the master reduced to the DCT scale drafting
        would have picked. The caller checks :meth:`covers` first."""
        full = self.header.oriented_size
        factor = 1
        if self.header.format == "JPEG" and need is not None:
            factor = max(_draft_scale(full, need) // self.scale, 1)
        if factor >= 2 and self.image.mode not in _UNREDUCIBLE:
            return self.image.reduce(factor)
        view = self.image._new(self.image.im)  # shares the pixels, no copy
        view.readonly = 1  # so Pillow copies before any in-place change
        return view


@dataclass(frozen=True, slots=True)
class PixelSource:
    """What a render reads its pixels from: the source's bytes, and its decoded master when
    one is cached (a render the master cannot serve decodes ``data`` instead)."""

    identity: str
    data: bytes
    master: Master | None = None
    # When ``data`` was loaded (epoch seconds, taken before the load began) and the
    # original's version (ETag, size+mtime): cache coherence checks a cached copy by them.
    loaded_at: float = 0.0
    version: str | None = None

    @property
    def nbytes(self) -> int:
        """The bytes this source holds in memory: its encoded data and its master's pixels."""
        return len(self.data) + (self.master.nbytes if self.master is not None else 0)


def _draft_scale(size: tuple[int, int], need: tuple[int, int]) -> int:
    """The DCT scale Pillow's ``draft`` picks to decode ``size`` for ``need``."""
    ratio = min(size[0] // max(need[0], 1), size[1] // max(need[1], 1))
    return next((scale for scale in (*_DCT_SCALES, 1) if ratio >= scale), 1)


def master_scale(opened: formats.Opened, master_size: int) -> int:
    """The master's reduction of ``opened``: as much as keeps ``master_size`` pixels along
    the longer side, in JPEG DCT steps for JPEGs."""
    longest = max(opened.oriented_size)
    if opened.mode in _UNREDUCIBLE:
        return 1
    if opened.format == "JPEG":
        return next((s for s in _DCT_SCALES if longest / s >= master_size), 1)
    return max(longest // master_size, 1)


def decode_master(opened: formats.Opened, master_size: int) -> Master | None:
    """The master of ``opened`` (None for an animation: its frames are not kept)."""
    if opened.animated:
        return None
    scale = master_scale(opened, master_size)
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
    return Master(image, header, scale, nbytes, time.monotonic())


class MasterCache:
    """Sources with their masters by identity, least recently used first out, bounded by
    bytes (encoded data and master pixels together) and by age.

    The pipeline looks it up and fills it; the lock only makes each call atomic.
    """

    def __init__(self, *, max_bytes: int, ttl: float) -> None:
        self._max_bytes = max_bytes
        self._ttl = ttl
        self._entries: OrderedDict[str, PixelSource] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evictions = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now (encoded sources and master pixels)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, identity: str) -> PixelSource | None:
        """The fresh cached source ``identity``, or None."""
        with self._lock:
            source = self._entries.get(identity)
            if source is None:
                return None
            assert source.master is not None  # only sources with a master are kept
            if time.monotonic() - source.master.created > self._ttl:
                self._drop(identity)
                return None
            self._entries.move_to_end(identity)
            return source

    def put(self, source: PixelSource) -> bool:
        """Keep ``source`` and its master (evicting the least recently used); False when it
        has no master or alone is over the budget."""
        if source.master is None or source.nbytes > self._max_bytes:
            return False
        with self._lock:
            if source.identity in self._entries:
                self._drop(source.identity)
            self._entries[source.identity] = source
            self._bytes += source.nbytes
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._entries)))
                self.evictions += 1
        return True

    def discard(self, source: PixelSource) -> None:
        """Forget ``source`` (a purge or a changed original made it stale), unless a newer
        copy of its original has replaced it meanwhile."""
        with self._lock:
            if self._entries.get(source.identity) is source:
                self._drop(source.identity)

    def _drop(self, identity: str) -> None:
        source = self._entries.pop(identity)
        self._bytes -= source.nbytes
