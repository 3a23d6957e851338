"""Pure crop and resize math, computed the way Thumbor computes it (no pixels here)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from thumbor_py.url import Crop, Dimension, Halign, Valign

# The room kept around a detected region (a face), as a share of its size, when the crop has it.
REGION_MARGIN = 0.1
_ALIGN = {"left": 0.0, "center": 0.5, "right": 1.0, "top": 0.0, "middle": 0.5, "bottom": 1.0}


@dataclass(frozen=True, slots=True)
class Box:
    """A crop box in pixels: left and top inclusive, right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of the box."""
        return self.right - self.left, self.bottom - self.top


@dataclass(frozen=True, slots=True)
class FocalPoint:
    """A point of interest; detected faces weigh by area, alignment points weigh 1.

    ``region`` is the whole box a detector found (a face) when the point is not its centre;
    crops keep regions whole where they fit (see :func:`keep_regions`).
    """

    x: float
    y: float
    weight: float = 1.0
    width: int = 1
    height: int = 1
    origin: str = "alignment"
    region: Box | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResizeRequest:
    """The geometry part of a request, after filters had their say."""

    width: Dimension = 0
    height: Dimension = 0
    fit_in: bool = False
    adaptive: bool = False
    full: bool = False
    halign: Halign = "center"
    valign: Valign = "middle"
    stretch: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to do to an image of a given size: auto crop, then resize to ``resize``."""

    target: tuple[float, float]
    focal_points: tuple[FocalPoint, ...]
    auto_crop: Box | None = None
    resize: tuple[int, int] | None = None
    # The resize as Thumbor reports it in meta/ (floats where it keeps floats).
    reported_resize: tuple[float, float] | None = None


def manual_crop_box(crop: Crop | None, size: tuple[int, int]) -> Box | None:
    """The URL's ``AxB:CxD`` crop clamped into the image, or None when empty (as Thumbor)."""
    if crop is None:
        return None
    width, height = size
    left, right = (min(max(v, 0), width) for v in (crop.left, crop.right))
    top, bottom = (min(max(v, 0), height) for v in (crop.top, crop.bottom))
    if left >= right or top >= bottom:
        return None
    return Box(left, top, right, bottom)


def proportional(value: float, numerator: int, denominator: int) -> float:
    """``round(value * numerator / denominator)`` as Thumbor's engine computes it."""
    return float(round(float(value) * numerator / denominator, 0))


def target_dimensions(request: ResizeRequest, size: tuple[int, int]) -> tuple[float, float]:
    """Requested width and height, with 0 meaning proportional and ``orig`` the source."""
    width, height = size
    if not request.width and not request.height:
        return float(width), float(height)
    target_w = _target(request.width, width, request.height, height)
    target_h = _target(request.height, height, request.width, width)
    return target_w, target_h


def _target(value: Dimension, own: int, other_value: Dimension, other: int) -> float:
    """One side of the target: ``orig``, a number, or 0 for proportional to the other."""
    if value == "orig":
        return float(own)
    if value:
        return float(value)
    return proportional(_numeric(other_value, other), own, other)


def _numeric(value: Dimension, orig: int) -> int:
    return orig if value == "orig" else value


def alignment_point(halign: Halign, valign: Valign, size: tuple[int, int]) -> FocalPoint:
    """The focal point implied by the URL's alignment (Thumbor truncates to whole pixels)."""
    return FocalPoint(float(int(size[0] * _ALIGN[halign])), float(int(size[1] * _ALIGN[valign])))


def center_of_mass(points: Sequence[FocalPoint]) -> tuple[float, float]:
    """Weighted centre of the focal points, floored as Thumbor does."""
    total = sum(p.weight for p in points)
    x = sum(p.x * p.weight for p in points) // total
    y = sum(p.y * p.weight for p in points) // total
    return x, y


def points_in_crop(points: Sequence[FocalPoint], crop: Box | None) -> tuple[FocalPoint, ...]:
    """Focal points in a manual crop's pixels; Thumbor drops those outside the crop."""
    if crop is None:
        return tuple(points)
    return tuple(
        _moved(point, crop.left, crop.top)
        for point in points
        if crop.left <= point.x <= crop.right and crop.top <= point.y <= crop.bottom
    )


def _moved(point: FocalPoint, left: int, top: int) -> FocalPoint:
    region = point.region
    if region is not None:
        region = Box(region.left - left, region.top - top, region.right - left, region.bottom - top)
    return dataclasses.replace(point, x=point.x - left, y=point.y - top, region=region)


def keep_regions(crop: Box, points: Sequence[FocalPoint], size: tuple[int, int]) -> Box:
    """``crop`` moved as little as possible to hold the detected regions whole (all of them
    when they fit, else the heaviest), with a margin of ``REGION_MARGIN`` where there is room
    and centred on them where there is not; unchanged when they do not fit at all.

    Not in Thumbor, which only centres on the weighted centre: its upward nudge of a face's
    point can cut the chin off a crop that had room for the whole face.
    """
    found = [p for p in points if p.region is not None]
    if not found:
        return crop
    boxes = [_clamped(p.region, size) for p in found if p.region is not None]
    union = Box(
        min(b.left for b in boxes),
        min(b.top for b in boxes),
        max(b.right for b in boxes),
        max(b.bottom for b in boxes),
    )
    heaviest = _clamped(max(found, key=lambda p: p.weight).region, size)
    width, height = crop.size
    for region in (union, heaviest):
        if region.size[0] <= width and region.size[1] <= height:
            left = _hold(crop.left, width, region.left, region.right, size[0])
            top = _hold(crop.top, height, region.top, region.bottom, size[1])
            return Box(left, top, left + width, top + height)
    return crop


def _clamped(box: Box | None, size: tuple[int, int]) -> Box:
    assert box is not None
    return Box(max(box.left, 0), max(box.top, 0), min(box.right, size[0]), min(box.bottom, size[1]))


def _hold(start: int, length: int, low: int, high: int, limit: int) -> int:
    """The start of a ``length`` span near ``start`` that holds ``[low, high)``, inside
    ``[0, limit)``."""
    margin = round((high - low) * REGION_MARGIN)
    if high - low + 2 * margin > length:
        start = round((low + high - length) / 2)
    elif low - margin < start:
        start = low - margin
    elif high + margin > start + length:
        start = high + margin - length
    return min(max(start, 0), limit - length)


def auto_crop_box(
    size: tuple[int, int], target: tuple[float, float], focus: tuple[float, float]
) -> Box | None:
    """Crop to the target's aspect ratio around ``focus``; None when the ratios already match."""
    width, height = size
    target_w = target[0] or 1
    target_h = target[1] or 1
    if round(width / height, 2) == round(target_w / target_h, 2):
        return None
    if target[0] / width > target[1] / height:
        crop_w = width
        crop_h = int(round(width * target[1] / target_w, 0))
    else:
        crop_w = int(round(math.ceil(target[0] * height / target_h), 0))
        crop_h = height
    left = round(min(max(focus[0] - crop_w / 2, 0.0), width - crop_w))
    top = round(min(max(focus[1] - crop_h / 2, 0.0), height - crop_h))
    return Box(left, top, min(left + crop_w, width), min(top + crop_h, height))


def fit_in_size(
    request: ResizeRequest, size: tuple[int, int], target: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """The (possibly swapped) target and the size to resize to for ``fit-in`` variants."""
    width, height = size
    target_w, target_h = target
    if request.adaptive and (
        (width < height and target_w > target_h) or (width > height and target_w < target_h)
    ):
        target_w, target_h = target_h, target_w
    if not request.full and target_w >= width and target_h >= height:
        return (target_w, target_h), None
    sign = -1 if request.full else 1
    if width / (target_w or 1) * sign >= height / (target_h or 1) * sign:
        resize = (target_w, float(round(height * target_w / width + 1e-5)))
    else:
        resize = (float(round(width * target_h / height + 1e-5)), target_h)
    return (target_w, target_h), resize


def _pixels(value: float) -> int:
    return max(int(value), 1)


def plan(
    request: ResizeRequest, size: tuple[int, int], focal_points: Sequence[FocalPoint] = ()
) -> Plan:
    """Thumbor's image operations for an image of ``size`` (after trim and manual crop)."""
    target = target_dimensions(request, size)
    points = tuple(focal_points) or (alignment_point(request.halign, request.valign, size),)
    if request.fit_in:
        swapped, fit = fit_in_size(request, size, target)
        if fit is None:
            return Plan(target=swapped, focal_points=points)
        resize = (_pixels(fit[0]), _pixels(fit[1]))
        return Plan(target=swapped, focal_points=points, resize=resize, reported_resize=fit)
    box = None
    cropped = size
    if not request.stretch:
        box = auto_crop_box(size, target, center_of_mass(points))
        box = box and keep_regions(box, points, size)
        cropped = box.size if box else size
    if target == (float(cropped[0]), float(cropped[1])):
        return Plan(target=target, focal_points=points, auto_crop=box)
    resize = (_pixels(target[0] or 1), _pixels(target[1] or 1))
    reported = (target[0] or 1, target[1] or 1)
    return Plan(
        target=target, focal_points=points, auto_crop=box, resize=resize, reported_resize=reported
    )


def output_size(request: ResizeRequest, size: tuple[int, int]) -> tuple[int, int]:
    """The size the plan produces, for limit checks before any pixel is touched."""
    result = plan(request, size)
    if result.resize is not None:
        return result.resize
    return result.auto_crop.size if result.auto_crop else size


def clamp_to_max(value: Dimension, maximum: int) -> Dimension:
    """Thumbor's ``MAX_WIDTH``/``MAX_HEIGHT`` clamp of a requested dimension (0 = off)."""
    if maximum and isinstance(value, int) and value > maximum:
        return maximum
    return value


def normalize_size(
    size: tuple[int, int], max_width: int, max_height: int
) -> tuple[int, int] | None:
    """The size Thumbor shrinks an oversized source to before anything else, or None."""
    width, height = size
    width_diff = width - max_width
    height_diff = height - max_height
    if max_width and width > max_width and width_diff > height_diff:
        return max_width, int(proportional(max_width, height, width))
    if max_height and height > max_height and height_diff > width_diff:
        return int(proportional(max_height, width, height)), max_height
    return None


def scale_crop(crop: Crop, scale: float) -> Crop:
    """A manual crop given in original pixels, expressed in a resized source's pixels.

    Truncated, not rounded, as Thumbor does (it scales the crop as floats and its engine's
    ``crop`` takes ``int()`` of each edge): 62.5..187.5 is 62..187, not 62..188.
    """
    return Crop(*(int(v * scale) for v in (crop.left, crop.top, crop.right, crop.bottom)))
