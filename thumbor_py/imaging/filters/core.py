"""Filters that steer encoding, caching and geometry rather than pixels."""

from __future__ import annotations

import dataclasses
import re

from PIL import Image

from thumbor_py import url
from thumbor_py.errors import FilterArgumentError, UrlParseError
from thumbor_py.imaging.filters import (
    BOOLEAN,
    DECIMAL,
    NUMBER,
    POSITIVE_NUMBER,
    STRING,
    FilterContext,
    OutputOptions,
    RenderPlan,
    image_filter,
)
from thumbor_py.imaging.formats import FORMAT_NAMES
from thumbor_py.imaging.geometry import FocalPoint

_FOCAL = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
_DOMAIN = re.compile(r"^(https?://)?.*?/")
_MAX_NESTING = 10
_ROTATIONS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


@image_filter(POSITIVE_NUMBER, phase="output")
def quality(options: OutputOptions, value: int) -> OutputOptions:
    """``quality(N)``: encoder quality for this response (clamped to 1..100)."""
    return dataclasses.replace(options, quality=min(max(value, 1), 100))


@image_filter(STRING, phase="output", name="format")
def output_format(options: OutputOptions, name: str) -> OutputOptions:
    """``format(webp|jpeg|png|gif|avif)``: the output format; unknown names are ignored."""
    return dataclasses.replace(options, format=FORMAT_NAMES.get(name.lower(), options.format))


@image_filter(phase="output")
def strip_icc(options: OutputOptions) -> OutputOptions:
    """``strip_icc()``: drop the ICC colour profile from the output."""
    return dataclasses.replace(options, strip_icc=True)


@image_filter(phase="output")
def strip_exif(options: OutputOptions) -> OutputOptions:
    """``strip_exif()``: drop EXIF from the output (already the default)."""
    return dataclasses.replace(options, strip_exif=True)


@image_filter(POSITIVE_NUMBER, phase="output")
def max_age(options: OutputOptions, seconds: int) -> OutputOptions:
    """``max_age(N)``: this response's ``Cache-Control`` max-age; 0 sends no cache headers."""
    return dataclasses.replace(options, max_age=seconds)


@image_filter(phase="pre_load")
def stretch(plan: RenderPlan) -> RenderPlan:
    """``stretch()``: resize to the exact box without cropping to its aspect ratio."""
    return dataclasses.replace(plan, geometry=dataclasses.replace(plan.geometry, stretch=True))


@image_filter(phase="after_load")
def no_upscale(plan: RenderPlan) -> RenderPlan:
    """``no_upscale()``: never ask for more pixels than the (oriented) source has."""
    width, height = plan.oriented_size
    geometry = plan.geometry
    changes: dict[str, int] = {}
    if isinstance(geometry.width, int):
        changes["width"] = min(geometry.width, width)
    if isinstance(geometry.height, int):
        changes["height"] = min(geometry.height, height)
    return dataclasses.replace(plan, geometry=dataclasses.replace(geometry, **changes))  # type: ignore[arg-type]


@image_filter(meta=True, grows=True)
def upscale(image: Image.Image, ctx: FilterContext) -> Image.Image:
    """``upscale()``: with ``fit-in``, enlarge a smaller image to fit the box."""
    target_w, target_h = ctx.plan.geometry.width, ctx.plan.geometry.height
    if (
        not isinstance(target_w, int)
        or not isinstance(target_h, int)
        or not target_w
        or not target_h
    ):
        return image
    width, height = image.size
    if width >= target_w or height >= target_h:
        return image
    if width / target_w >= height / target_h:
        size = (target_w, int(height * target_w / width))
    else:
        size = (int(width * target_h / height), target_h)
    ctx.check_canvas(size, "upscale() output")
    return image.resize(size, Image.Resampling.LANCZOS)


@image_filter(BOOLEAN, phase="output")
def autojpg(options: OutputOptions, enabled: bool = True) -> OutputOptions:
    """``autojpg([enabled])``: override ``auto_png_to_jpg`` for this request."""
    return dataclasses.replace(options, auto_png_to_jpg=enabled)


@image_filter(POSITIVE_NUMBER, phase="output")
def max_bytes(options: OutputOptions, limit: int) -> OutputOptions:
    """``max_bytes(N)``: the highest quality whose output fits in N bytes (by bisection)."""
    return dataclasses.replace(options, max_bytes=limit if limit > 0 else None)


@image_filter(DECIMAL, meta=True)
def proportion(image: Image.Image, ctx: FilterContext, value: float) -> Image.Image:
    """``proportion(F)``: scale the result by F (0 < F <= 1)."""
    if value <= 0 or value > 1.0:
        raise FilterArgumentError(f"proportion({value}): must be in (0, 1]")
    size = (int(image.size[0] * value), int(image.size[1] * value))
    if size[0] < 1 or size[1] < 1:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.resize(size, Image.Resampling.LANCZOS)


@image_filter(NUMBER, meta=True)
def rotate(image: Image.Image, ctx: FilterContext, degrees: int) -> Image.Image:
    """``rotate(N)``: rotate counter-clockwise by a multiple of 90 degrees."""
    if degrees % 90:
        raise FilterArgumentError(f"rotate({degrees}): only multiples of 90 are allowed")
    transpose = _ROTATIONS.get(degrees % 360)
    return image if transpose is None else image.transpose(transpose)


@image_filter(STRING, phase="pre_load")
def focal(plan: RenderPlan, box: str) -> RenderPlan:
    """``focal(LxT:RxB)``: declare a region of interest for ``smart`` crops."""
    match = _FOCAL.match(box)
    if match is None:
        raise FilterArgumentError(f"focal({box}): expected LxT:RxB")
    left, top, right, bottom = (int(v) for v in match.groups())
    width, height = right - left, bottom - top
    if not (width and height):
        return plan
    point = _from_square(left, top, width, height, "Explicit")
    return dataclasses.replace(plan, focal_points=(*plan.focal_points, point))


def _from_square(left: int, top: int, width: int, height: int, origin: str) -> FocalPoint:
    return FocalPoint(
        float(left + width // 2),
        float(top + height // 2),
        weight=float(width * height),
        width=width,
        height=height,
        origin=origin,
    )


@image_filter(phase="pre_load")
def extract_focal(plan: RenderPlan) -> RenderPlan:
    """``extract_focal()``: the source is itself a Thumbor URL with a crop; load its image
    instead and use the crop as the focal region."""
    found = _nested_crop(plan.source)
    if found is None:
        return plan
    source, crop = found
    width, height = crop.right - crop.left, crop.bottom - crop.top
    point = _from_square(crop.left, crop.top, width, height, "Original Extraction")
    return dataclasses.replace(plan, source=source, focal_points=(*plan.focal_points, point))


def _nested_crop(source: str) -> tuple[str, url.Crop] | None:
    text = source
    for _ in range(_MAX_NESTING):
        text = _DOMAIN.sub("", text, count=1)
        try:
            nested = url.parse("/" + text)
        except UrlParseError:
            return None
        if not nested.image or not (nested.signature or nested.unsafe):
            return None
        if nested.crop is not None:
            return nested.source, nested.crop
        text = nested.source
    return None
