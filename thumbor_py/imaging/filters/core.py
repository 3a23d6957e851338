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
    RenderState,
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


@image_filter(POSITIVE_NUMBER)
def quality(state: RenderState, value: int) -> None:
    """``quality(N)``: encoder quality for this response (clamped to 1..100)."""
    state.quality = min(max(value, 1), 100)


@image_filter(STRING, name="format")
def output_format(state: RenderState, name: str) -> None:
    """``format(webp|jpeg|png|gif|avif)``: the output format; unknown names are ignored."""
    state.format = FORMAT_NAMES.get(name.lower(), state.format)


@image_filter()
def strip_icc(state: RenderState) -> None:
    """``strip_icc()``: drop the ICC colour profile from the output."""
    state.strip_icc = True


@image_filter()
def strip_exif(state: RenderState) -> None:
    """``strip_exif()``: drop EXIF from the output (already the default)."""
    state.strip_exif = True


@image_filter(POSITIVE_NUMBER)
def max_age(state: RenderState, seconds: int) -> None:
    """``max_age(N)``: this response's ``Cache-Control`` max-age; 0 sends no cache headers."""
    state.max_age = seconds


@image_filter(phase="pre_load")
def stretch(state: RenderState) -> None:
    """``stretch()``: resize to the exact box without cropping to its aspect ratio."""
    state.geometry = dataclasses.replace(state.geometry, stretch=True)


@image_filter(phase="after_load")
def no_upscale(state: RenderState) -> None:
    """``no_upscale()``: never ask for more pixels than the (oriented) source has."""
    width, height = state.oriented_size
    geometry = state.geometry
    changes: dict[str, int] = {}
    if isinstance(geometry.width, int):
        changes["width"] = min(geometry.width, width)
    if isinstance(geometry.height, int):
        changes["height"] = min(geometry.height, height)
    state.geometry = dataclasses.replace(geometry, **changes)  # type: ignore[arg-type]


@image_filter(meta=True)
def upscale(state: RenderState) -> None:
    """``upscale()``: with ``fit-in``, enlarge a smaller image to fit the box."""
    image = state.pixels
    target_w, target_h = state.geometry.width, state.geometry.height
    if (
        not isinstance(target_w, int)
        or not isinstance(target_h, int)
        or not target_w
        or not target_h
    ):
        return
    width, height = image.size
    if width >= target_w or height >= target_h:
        return
    if width / target_w >= height / target_h:
        size = (target_w, int(height * target_w / width))
    else:
        size = (int(width * target_h / height), target_h)
    state.image = image.resize(size, Image.Resampling.LANCZOS)


@image_filter(BOOLEAN)
def autojpg(state: RenderState, enabled: bool = True) -> None:
    """``autojpg([enabled])``: override ``auto_png_to_jpg`` for this request."""
    state.auto_png_to_jpg = enabled


@image_filter(POSITIVE_NUMBER)
def max_bytes(state: RenderState, limit: int) -> None:
    """``max_bytes(N)``: the highest quality whose output fits in N bytes (by bisection)."""
    state.max_bytes = limit if limit > 0 else None


@image_filter(DECIMAL, meta=True)
def proportion(state: RenderState, value: float) -> None:
    """``proportion(F)``: scale the result by F (0 < F <= 1)."""
    if value <= 0 or value > 1.0:
        raise FilterArgumentError(f"proportion({value}): must be in (0, 1]")
    image = state.pixels
    size = (int(image.size[0] * value), int(image.size[1] * value))
    if size[0] < 1 or size[1] < 1:
        return
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    state.image = image.resize(size, Image.Resampling.LANCZOS)


@image_filter(NUMBER, meta=True)
def rotate(state: RenderState, degrees: int) -> None:
    """``rotate(N)``: rotate counter-clockwise by a multiple of 90 degrees."""
    if degrees % 90:
        raise FilterArgumentError(f"rotate({degrees}): only multiples of 90 are allowed")
    transpose = _ROTATIONS.get(degrees % 360)
    if transpose is not None:
        state.image = state.pixels.transpose(transpose)


@image_filter(STRING, phase="pre_load")
def focal(state: RenderState, box: str) -> None:
    """``focal(LxT:RxB)``: declare a region of interest for ``smart`` crops."""
    match = _FOCAL.match(box)
    if match is None:
        raise FilterArgumentError(f"focal({box}): expected LxT:RxB")
    left, top, right, bottom = (int(v) for v in match.groups())
    width, height = right - left, bottom - top
    if width and height:
        state.focal_points.append(_from_square(left, top, width, height, "Explicit"))


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
def extract_focal(state: RenderState) -> None:
    """``extract_focal()``: the source is itself a Thumbor URL with a crop; load its image
    instead and use the crop as the focal region."""
    found = _nested_crop(state.source)
    if found is None:
        return
    source, crop = found
    state.source = source
    width, height = crop.right - crop.left, crop.bottom - crop.top
    state.focal_points.append(
        _from_square(crop.left, crop.top, width, height, "Original Extraction")
    )


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
