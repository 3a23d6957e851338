"""Smart-crop detection: the detector chain, the small copy it looks at, and its cache.

Detectors (the :class:`Detector` Protocol) are built once, at start-up, from
``imaging.detectors`` by :mod:`thumbor_py.assembly`, which hands them in. A render asks
:meth:`SmartDetection.detect` for the focal points of its upright (and trimmed) source: the
detectors look, in order, at one RGB copy downscaled to ``imaging.detection_pixels``; the
first that finds anything wins, and its points are mapped back onto the source's pixels.
Results (also "nothing found") go to a bounded in-memory LRU cache keyed by source, its
content and the detector configuration, so the other sizes of a photo do not detect again;
concurrent misses on one source wait for a single detection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol, runtime_checkable

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.imaging.geometry import Box, FocalPoint
from thumbor_py.singleflight import SingleFlight

Points = tuple[FocalPoint, ...]


@runtime_checkable
class Detector(Protocol):
    """Finds the points of interest a ``smart`` crop centres on.

    ``detect`` gets an upright RGB copy of the source, downscaled to at most
    ``imaging.detection_pixels`` pixels (the detector may change it), and returns focal points
    in that copy's pixels; the server maps x, y, width and height back onto the source and
    scales the weight of a region (width or height over 1) with its area. An empty list means
    "nothing found": the next detector in ``imaging.detectors`` runs. It is synchronous and runs
    in the render thread (concurrently, so keep per-call state local). It may raise: the
    response then falls back to halign/valign and is neither stored nor cached for long.
    """

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        """The focal points found in ``image`` (empty when none)."""
        ...


def detection_size(size: tuple[int, int], pixels: int) -> tuple[int, int]:
    """``size`` scaled down (never up) to about ``pixels`` pixels, in the same proportions.

    A pixel budget rather than a longest side: detection time follows the area, and a panorama
    keeps faces tall enough to be found.
    """
    scale = math.sqrt(pixels / (size[0] * size[1]))
    if scale >= 1:
        return size
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def detection_image(image: Image.Image, pixels: int) -> Image.Image:
    """An RGB copy of ``image`` with at most about ``pixels`` pixels (see detection_size)."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGB")
    size = detection_size(image.size, pixels)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image.convert("RGB")


def map_points(
    points: Sequence[FocalPoint], size: tuple[int, int], work_size: tuple[int, int]
) -> Points:
    """Points found in an image of ``size`` moved onto one of ``work_size``: coordinates and
    extents scale, and so does the weight of a region (it is an area)."""
    sx, sy = work_size[0] / size[0], work_size[1] / size[1]
    return tuple(_mapped(point, sx, sy) for point in points)


def _mapped(point: FocalPoint, sx: float, sy: float) -> FocalPoint:
    x, y = float(int(point.x * sx)), float(int(point.y * sy))
    region = point.region
    if region is not None:
        region = Box(
            int(region.left * sx),
            int(region.top * sy),
            math.ceil(region.right * sx),
            math.ceil(region.bottom * sy),
        )
    if point.width <= 1 and point.height <= 1:
        return dataclasses.replace(point, x=x, y=y, region=region)
    return dataclasses.replace(
        point,
        x=x,
        y=y,
        width=max(round(point.width * sx), 1),
        height=max(round(point.height * sy), 1),
        weight=float(round(point.weight * sx * sy)),
        region=region,
    )


class SmartDetection:
    """The configured detector chain and its cache; one per renderer, shared by its threads."""

    def __init__(self, config: ImagingConfig, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)
        self._pixels = config.detection_pixels
        # What the cached points depend on: the chain (by spec, settings included) and budget.
        specs = tuple((spec.use, repr(dict(spec.settings))) for spec in config.detectors)
        self._identity = (specs, config.detection_pixels)
        self._cache = _LruCache(config.detection_cache_size)
        self._flights: SingleFlight[Hashable, Points] = SingleFlight()

    @property
    def enabled(self) -> bool:
        """Whether any detector is configured."""
        return bool(self.detectors)

    def key(self, source: str, data: bytes, *frame: Hashable) -> Hashable:
        """The cache key of ``source`` whose bytes are ``data`` (a changed original is a new
        key; sha256 costs ~2 ms on a 4 MB JPEG); ``frame`` names its pixels (size, trim...)."""
        return (self._identity, source, hashlib.sha256(data).digest(), frame)

    def cached(self, key: Hashable) -> Points | None:
        """The points stored under ``key``, or None when it was never detected."""
        return self._cache.get(key)

    def detect(
        self, image: Callable[[], Image.Image], work_size: tuple[int, int], key: Hashable
    ) -> Points:
        """The focal points of the image ``image()`` returns (called on a cache miss only),
        in ``work_size`` pixels, from the cache or the chain.

        Raises whatever ``image`` or a detector raises (nothing is cached then).
        """
        points = self._cache.get(key)
        if points is not None:
            return points
        return self._flights.run_blocking(key, lambda: self._detected(image, work_size, key))

    def _detected(
        self, image: Callable[[], Image.Image], work_size: tuple[int, int], key: Hashable
    ) -> Points:
        points = self._cache.get(key)  # a flight that ended just before this one started
        if points is None:
            points = self._run(image(), work_size)
            self._cache.put(key, points)
        return points

    def _run(self, image: Image.Image, work_size: tuple[int, int]) -> Points:
        small = detection_image(image, self._pixels)
        for detector in self.detectors:
            found = detector.detect(small)
            if found:
                return map_points(found, small.size, work_size)
        return ()


class _LruCache:
    """A thread-safe mapping that forgets its least recently used entries beyond capacity."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Hashable, Points] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Points | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Points) -> None:
        if not self._capacity:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
