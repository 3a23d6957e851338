"""``trim``: cut away the border coloured like a corner pixel, within a tolerance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from thumbor_py.imaging.geometry import Box
from thumbor_py.imaging.pixels import STRIP_PIXELS
from thumbor_py.url import Trim

_MIN_ROWS = 16


def trim_box(
    image: Image.Image, trim: Trim, checkpoint: Callable[[], None] = lambda: None
) -> Box | None:
    """The bounding box of everything that differs from the corner's colour by more than
    the tolerance (a Euclidean distance in RGB); None when nothing does (Thumbor then
    leaves the image alone).

    Done in strips of about a megapixel, with ``checkpoint`` between them: a whole-image
    difference of a 74-megapixel source in 32-bit channels would take gigabytes.
    """
    width, height = image.size
    corner = (0, 0) if trim.corner == "top-left" else (width - 1, height - 1)
    reference = _rgb(image.crop((*corner, corner[0] + 1, corner[1] + 1)))[0, 0]
    limit = trim.tolerance * trim.tolerance
    rows = max(_MIN_ROWS, STRIP_PIXELS // max(width, 1))
    found: list[tuple[int, int, int, int]] = []
    for top in range(0, height, rows):
        checkpoint()
        strip = _rgb(image.crop((0, top, width, min(top + rows, height))))
        difference = strip - reference
        distance = (difference.astype(np.int32) ** 2).sum(axis=2)
        box = _bbox(distance > limit)
        if box is not None:
            found.append((box[0], box[1] + top, box[2], box[3] + top))
    if not found:
        return None
    return Box(
        min(box[0] for box in found),
        min(box[1] for box in found),
        max(box[2] for box in found),
        max(box[3] for box in found),
    )


def _rgb(image: Image.Image) -> np.ndarray:  # type: ignore[type-arg]
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:  # type: ignore[type-arg]
    """(left, top, right, bottom) of the True cells, right and bottom exclusive."""
    columns = np.flatnonzero(mask.any(axis=0))
    if not columns.size:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1
