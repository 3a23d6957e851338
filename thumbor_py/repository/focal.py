"""The recorded focal point of a registered original, used by every ``smart`` crop of it.

The hook sits where both dialects hand their request to the pipeline: a ``smart`` request
whose image is a registered original (its path ends with ``<prefix><sha256>.<ext>``) and that
declares no ``focal()`` of its own gets ``focal(...)`` from the record, which the renderer
already uses for smart crops (no change to imaging). The focal point is part of the result
key (``#focal=`` on the signed path). Lookups are cached in the process for ``ttl`` seconds;
a record store that fails answers "no focal point" (the crop falls back to detection).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from thumbor_py.errors import StorageError
from thumbor_py.repository.records import ImageRecord, ImageRecords
from thumbor_py.url import FilterCall, ImageRequest

_CACHED = 4096


def focal_box(record: ImageRecord) -> str | None:
    """``LxT:RxB`` of a 2-pixel box around the record's focal point (None without one)."""
    if record.focal_point is None:
        return None
    x = round(record.focal_point[0] * record.width)
    y = round(record.focal_point[1] * record.height)
    left, top = max(0, min(x - 1, record.width - 2)), max(0, min(y - 1, record.height - 2))
    return f"{left}x{top}:{left + 2}x{top + 2}"


class FocalPoints:
    """Adds recorded focal points to the smart requests of registered originals."""

    def __init__(
        self,
        sites: Mapping[str, tuple[str, ImageRecords]],
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # tenant name -> (its originals' key prefix, its records). The image path may hold a
        # route or an alias before the prefix (``s3://bucket/originals/<sha256>.jpg``): the
        # pattern is matched at the end.
        self._sites = {
            name: (
                re.compile(
                    r"(?:^|/)" + re.escape(prefix) + r"([0-9a-f]{64})\.(?:jpg|png|webp|gif|avif)$"
                ),
                records,
            )
            for name, (prefix, records) in sites.items()
        }
        self._ttl = ttl
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, str | None]] = OrderedDict()

    async def apply(
        self, tenant: str, request: ImageRequest, signed_path: str
    ) -> tuple[ImageRequest, str]:
        """``request`` (and its key's path) with the recorded ``focal()`` when it applies."""
        site = self._sites.get(tenant)
        if site is None or not request.smart:
            return request, signed_path
        pattern = site[0]
        if any(f.name == "focal" for f in request.filters):
            return request, signed_path
        match = pattern.search(request.source)
        if match is None:
            return request, signed_path
        box = await self._box(tenant, match.group(1))
        if box is None:
            return request, signed_path
        filters = (*request.filters, FilterCall("focal", box))
        return dataclasses.replace(request, filters=filters), f"{signed_path}#focal={box}"

    async def _box(self, tenant: str, image_id: str) -> str | None:
        now = self._clock()
        cached = self._cache.get((tenant, image_id))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            record = await self._sites[tenant][1].get(tenant, image_id)
        except StorageError:
            return None
        box = None if record is None else focal_box(record)
        self._cache[(tenant, image_id)] = (now, box)
        self._cache.move_to_end((tenant, image_id))
        while len(self._cache) > _CACHED:
            self._cache.popitem(last=False)
        return box
