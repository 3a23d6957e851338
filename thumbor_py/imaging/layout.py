"""Where the geometry happens: the layout of crops and the one resize, applied to pixels.

Everything is computed in "work" pixels (the upright source after Thumbor's max-size
normalisation and trim); the decoded image may be smaller (JPEG draft) or larger, and
``Layout.scale`` maps work pixels onto it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import geometry, meta
from thumbor_py.imaging.geometry import Box, ResizeRequest
from thumbor_py.imaging.plan import RenderPlan
from thumbor_py.url import Crop, ImageRequest

RESAMPLE = Image.Resampling.LANCZOS
# Pillow reduces by an integer factor before the final Lanczos pass when the ratio allows
# it; 3.0 keeps the result indistinguishable from a full Lanczos resize.
REDUCING_GAP = 3.0


def resize_request(request: ImageRequest, config: ImagingConfig) -> ResizeRequest:
    return ResizeRequest(
        width=geometry.clamp_to_max(request.width, config.max_width),
        height=geometry.clamp_to_max(request.height, config.max_height),
        fit_in=request.fit_in,
        adaptive=request.adaptive,
        full=request.full,
        halign=request.halign,
        valign=request.valign,
    )


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the geometry happens, in "work" pixels: the upright source after Thumbor's
    max-size normalisation and trim. The decoded image may be smaller (JPEG draft) or larger
    (not yet normalised); ``scale`` maps work pixels onto it."""

    work_size: tuple[int, int]
    manual: Box | None
    plan: geometry.Plan
    scale: tuple[float, float] = (1.0, 1.0)


def layout_for(
    request: ImageRequest,
    plan: RenderPlan,
    size: tuple[int, int],
    config: ImagingConfig,
    trimmed_crop: Crop | None = None,
    *,
    trimmed: bool = False,
) -> Layout:
    """The crops and resize for an upright image of ``size``.

    After a trim, ``size`` is the trimmed image and ``trimmed_crop`` the URL's crop already
    moved into its coordinates; the max-size normalisation happened before the trim.
    """
    normalized = None
    if not trimmed:
        normalized = geometry.normalize_size(size, config.max_width, config.max_height)
    work_size = normalized or size
    crop = trimmed_crop if trimmed else request.crop
    if normalized and crop is not None:
        crop = geometry.scale_crop(crop, work_size[0] / size[0])
    manual = geometry.manual_crop_box(crop, work_size)
    return Layout(work_size, manual, _plan(plan, manual, work_size))


def refocus(layout: Layout, plan: RenderPlan) -> Layout:
    """``layout`` re-planned around ``plan.focal_points`` (after detection)."""
    return dataclasses.replace(layout, plan=_plan(plan, layout.manual, layout.work_size))


def _plan(plan: RenderPlan, manual: Box | None, work_size: tuple[int, int]) -> geometry.Plan:
    # Focal points are in work pixels; a manual crop moves them and drops those outside it.
    points = geometry.points_in_crop(plan.focal_points, manual)
    return geometry.plan(plan.geometry, manual.size if manual else work_size, points)


def draft_size(size: tuple[int, int], layout: Layout) -> tuple[int, int] | None:
    """The smallest decoded size that still holds every output pixel, or None for full size."""
    plan = layout.plan
    ratio = 1.0  # no resize: the output keeps work pixels (smaller after max_width/height)
    if plan.resize is not None:
        region = plan.auto_crop or layout.manual
        region_size = region.size if region else layout.work_size
        ratio = max(plan.resize[0] / region_size[0], plan.resize[1] / region_size[1])
    ratio *= layout.work_size[0] / size[0]
    if ratio >= 0.5:
        return None
    return math.ceil(size[0] * ratio), math.ceil(size[1] * ratio)


def record(layout: Layout, request: ImageRequest, operations: meta.Operations) -> None:
    """Log the geometry in Thumbor's ``meta/`` vocabulary (debug only crops manually)."""
    operations.focal_points = layout.plan.focal_points
    if layout.manual is not None:
        operations.crop(layout.manual)
    if request.debug:
        return
    if layout.plan.auto_crop is not None:
        operations.crop(layout.plan.auto_crop)
    if layout.plan.reported_resize is not None:
        operations.resize(layout.plan.reported_resize)
    if request.flip_horizontal:
        operations.items.append({"type": "flip_horizontally"})
    if request.flip_vertical:
        operations.items.append({"type": "flip_vertically"})


def finish(
    image: Image.Image, layout: Layout, request: ImageRequest, plan: RenderPlan
) -> Image.Image:
    """Crop and resize in one resampling pass, then flip (debug only draws focal points)."""
    scale = layout.scale
    if request.debug:
        if layout.manual is not None:
            image = image.crop(_scaled(layout.manual, scale))
        points = geometry.points_in_crop(plan.focal_points, layout.manual)
        return meta.draw_focal_points(image, list(points))
    box = _combine(layout.manual, layout.plan.auto_crop)
    resize = layout.plan.resize
    if resize is None and scale != (1.0, 1.0):
        resize = box.size if box else layout.work_size
    if resize is not None:
        full = Box(0, 0, *layout.work_size)
        image = _resize(image, resize, _scaled_float(box or full, scale))
    elif box is not None:
        image = image.crop(_scaled(box, scale))
    if request.flip_horizontal:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if request.flip_vertical:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def _combine(manual: Box | None, auto: Box | None) -> Box | None:
    if auto is None:
        return manual
    if manual is None:
        return auto
    return Box(
        manual.left + auto.left,
        manual.top + auto.top,
        manual.left + auto.right,
        manual.top + auto.bottom,
    )


def _scaled(box: Box, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    left, top, right, bottom = _scaled_float(box, scale)
    return round(left), round(top), round(right), round(bottom)


def _scaled_float(box: Box, scale: tuple[float, float]) -> tuple[float, float, float, float]:
    return box.left * scale[0], box.top * scale[1], box.right * scale[0], box.bottom * scale[1]


def _resize(
    image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    if image.mode in ("1", "P"):
        # Palette images resample only with NEAREST; go to true colour first, as Thumbor does.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in ("RGB", "RGBA", "L", "LA", "I", "F", "RGBX", "CMYK", "I;16"):
        image = image.convert("RGBA")
    if image.size == size and box == (0.0, 0.0, float(size[0]), float(size[1])):
        return image
    return image.resize(size, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)


def point_mapper(
    layout: Layout, request: ImageRequest, size: tuple[int, int]
) -> Callable[[float, float], tuple[float, float]]:
    """Maps a point of the oriented source onto the output (before post-transform filters)."""
    ratio = (layout.work_size[0] / size[0], layout.work_size[1] / size[1])
    box = _combine(layout.manual, layout.plan.auto_crop) or Box(0, 0, *layout.work_size)
    out_w, out_h = layout.plan.resize or box.size

    def mapped(x: float, y: float) -> tuple[float, float]:
        new_x = (x * ratio[0] - box.left) * out_w / max(box.size[0], 1)
        new_y = (y * ratio[1] - box.top) * out_h / max(box.size[1], 1)
        if request.flip_horizontal:
            new_x = out_w - new_x
        if request.flip_vertical:
            new_y = out_h - new_y
        return new_x, new_y

    return mapped
