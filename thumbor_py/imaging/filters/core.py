"""Filters that steer encoding, caching and geometry rather than pixels."""

from __future__ import annotations

import dataclasses

from PIL import Image

from thumbor_py.imaging.filters import (
    POSITIVE_NUMBER,
    STRING,
    RenderState,
    image_filter,
)
from thumbor_py.imaging.formats import FORMAT_NAMES


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


@image_filter()
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
