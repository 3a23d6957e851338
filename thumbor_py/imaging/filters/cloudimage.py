"""Filters the Cloudimage dialect needs where no Thumbor filter fits: fit padding with
gravity, cropfit, org_if_sml, focal points in pixels or percent, pixelate and free rotation."""

from __future__ import annotations

import dataclasses
import math
import re

from PIL import Image

from thumbor_py.imaging.filters import NUMBER, POSITIVE_NUMBER, Arg, FilterContext, image_filter
from thumbor_py.imaging.filters.canvas import mean_color, parse_color
from thumbor_py.imaging.geometry import FocalPoint
from thumbor_py.imaging.plan import RenderPlan

_COLOR = Arg(r"[#\w]+", str)
_PLACEMENT = Arg(r"(?:left|center|right)-(?:top|middle|bottom)", str)
_COORDINATE = Arg(r"\d+(?:\.\d+)?p?", str)
_SPLIT = re.compile(r"-")


@image_filter(_COLOR, _PLACEMENT, grows=True)
def ci_fit(
    image: Image.Image, ctx: FilterContext, color: str, placement: str = "center-middle"
) -> Image.Image:
    """``ci_fit(color[,halign-valign])``: pad to the requested box, placed by gravity."""
    target = ctx.requested_size(image)
    if image.size == target or image.size[0] > target[0] or image.size[1] > target[1]:
        return image
    ctx.check_canvas(target, "ci_fit() output")
    rgba = mean_color(image) if color == "auto" else parse_color(color)
    halign, valign = _SPLIT.split(placement)
    left = _offset(halign, target[0] - image.size[0])
    top = _offset(valign, target[1] - image.size[1])
    has_alpha = image.mode in ("RGBA", "LA") or rgba[3] < 255
    background = Image.new("RGBA" if has_alpha else "RGB", target, rgba[: 4 if has_alpha else 3])
    overlay = image.convert("RGBA")
    background.paste(overlay, (left, top), overlay if has_alpha else None)
    return background


def _offset(align: str, free: int) -> int:
    if align in ("left", "top"):
        return 0
    if align in ("right", "bottom"):
        return free
    return free // 2


@image_filter(phase="after_load")
def ci_cropfit(plan: RenderPlan) -> RenderPlan:
    """``ci_cropfit()``: crop when the source covers the box, fit (and pad) when it does not."""
    width, height = plan.oriented_size
    geometry = plan.geometry
    if not isinstance(geometry.width, int) or not isinstance(geometry.height, int):
        return plan
    if width < geometry.width or height < geometry.height:
        return dataclasses.replace(plan, geometry=dataclasses.replace(geometry, fit_in=True))
    return plan


@image_filter(phase="after_load")
def ci_org_if_sml(plan: RenderPlan) -> RenderPlan:
    """``ci_org_if_sml()``: serve the source's own size when the box is larger on any side."""
    width, height = plan.oriented_size
    geometry = plan.geometry
    wanted_w = geometry.width if isinstance(geometry.width, int) else 0
    wanted_h = geometry.height if isinstance(geometry.height, int) else 0
    if wanted_w > width or wanted_h > height:
        original = dataclasses.replace(geometry, width=0, height=0, fit_in=False)
        return dataclasses.replace(plan, geometry=original)
    return plan


@image_filter(_COORDINATE, _COORDINATE, phase="after_load")
def ci_focus(plan: RenderPlan, x: str, y: str) -> RenderPlan:
    """``ci_focus(X,Y)``: a focal point in source pixels, or percent with a ``p`` suffix."""
    width, height = plan.oriented_size
    left = _coordinate(x, width)
    top = _coordinate(y, height)
    point = FocalPoint(float(left), float(top), weight=1.0, origin="Explicit")
    return dataclasses.replace(plan, focal_points=(*plan.focal_points, point))


def _coordinate(text: str, length: int) -> int:
    if text.endswith("p"):
        return int(min(float(text[:-1]), 100.0) * length / 100)
    return min(int(float(text)), max(length - 1, 0))


@image_filter(POSITIVE_NUMBER)
def pixelate(image: Image.Image, ctx: FilterContext, size: int) -> Image.Image:
    """``pixelate(N)``: blocks of N×N pixels (1..100), each one colour."""
    if size <= 1:
        return image
    size = min(size, 100)
    small = (max(1, image.size[0] // size), max(1, image.size[1] // size))
    return image.resize(small, Image.Resampling.BOX).resize(image.size, Image.Resampling.NEAREST)


@image_filter(NUMBER, _COLOR, meta=True)
def ci_rotate(
    image: Image.Image, ctx: FilterContext, degrees: int, color: str = "ffffff"
) -> Image.Image:
    """``ci_rotate(N[,color])``: rotate counter-clockwise by any angle, corners in ``color``."""
    degrees %= 360
    if not degrees:
        return image
    radians = math.radians(degrees)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    width, height = image.size
    ctx.check_canvas(
        (math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)),
        "ci_rotate() output",
    )
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    fill = parse_color(color)[: len(image.mode)]
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
