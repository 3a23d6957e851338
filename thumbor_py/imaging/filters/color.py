"""Colour filters: brightness, contrast, rgb, saturation, colorize, curve, equalize, noise,
grayscale. Arithmetic follows Thumbor's C extensions (integer maths, clamped to 0..255)."""

from __future__ import annotations

import ast

import numpy as np
from PIL import Image

from thumbor_py.errors import FilterArgumentError
from thumbor_py.imaging import pixels
from thumbor_py.imaging.filters import (
    DECIMAL,
    NUMBER,
    POSITIVE_NUMBER,
    STRING,
    Arg,
    FilterContext,
    image_filter,
)

_CURVE = Arg(r"\[(?:\(\d+,\d+\),?)*\]", lambda text: tuple(ast.literal_eval(text)))


def _shift(delta: int) -> pixels.Lut:
    return [pixels.clamp(value + delta) for value in range(256)]


@image_filter(NUMBER)
def brightness(image: Image.Image, ctx: FilterContext, value: int) -> Image.Image:
    """``brightness(N)``: add N% of 255 to every colour channel (N may be negative)."""
    lut = _shift(pixels.cdiv(255 * value, 100))
    return pixels.apply_luts(image, lut, lut, lut)


@image_filter(NUMBER)
def contrast(image: Image.Image, ctx: FilterContext, value: int) -> Image.Image:
    """``contrast(N)``: scale every channel around 128 by ``((N+100)/100)²``."""
    factor = pixels.cdiv((value + 100) * (value + 100), 100)
    lut = [pixels.clamp(pixels.cdiv(factor * (v - 128), 100) + 128) for v in range(256)]
    return pixels.apply_luts(image, lut, lut, lut)


@image_filter(NUMBER, NUMBER, NUMBER)
def rgb(image: Image.Image, ctx: FilterContext, red: int, green: int, blue: int) -> Image.Image:
    """``rgb(R,G,B)``: add R%, G% and B% of 255 to the red, green and blue channels."""
    luts = [_shift(pixels.cdiv(255 * value, 100)) for value in (red, green, blue)]
    return pixels.apply_luts(image, *luts)


@image_filter(POSITIVE_NUMBER, POSITIVE_NUMBER, POSITIVE_NUMBER, STRING)
def colorize(
    image: Image.Image, ctx: FilterContext, red_pct: int, green_pct: int, blue_pct: int, fill: str
) -> Image.Image:
    """``colorize(R%,G%,B%,rrggbb)``: blend each channel towards the fill colour."""
    try:
        fill_rgb = bytes.fromhex(fill)
    except ValueError as exc:
        raise FilterArgumentError(f"colorize: {fill!r} is not a hex colour") from exc
    if len(fill_rgb) != 3:
        raise FilterArgumentError(f"colorize: {fill!r} is not an rrggbb colour")
    luts = [
        [pixels.clamp((v * (100.0 - pct) + target * pct) / 100.0) for v in range(256)]
        for pct, target in zip((red_pct, green_pct, blue_pct), fill_rgb, strict=True)
    ]
    return pixels.apply_luts(image, *luts)


@image_filter(_CURVE, _CURVE, _CURVE, _CURVE)
def curve(
    image: Image.Image,
    ctx: FilterContext,
    all_channels: tuple[tuple[int, int], ...],
    red: tuple[tuple[int, int], ...],
    green: tuple[tuple[int, int], ...],
    blue: tuple[tuple[int, int], ...],
) -> Image.Image:
    """``curve([(x,y),…] ×4)``: spline curves for all channels, then red, green, blue."""
    try:
        overall = pixels.curve_lut(all_channels)
        luts = [pixels.curve_lut(points) for points in (red, green, blue)]
    except ValueError as exc:
        raise FilterArgumentError(f"curve: {exc}") from exc
    # Thumbor applies the channel curve first, then the all-channels one.
    composed = [[overall[lut[v]] for v in range(256)] for lut in luts]
    return pixels.apply_luts(image, *composed)


@image_filter()
def equalize(image: Image.Image, ctx: FilterContext) -> Image.Image:
    """``equalize()``: histogram equalisation of each colour channel."""
    image = pixels.as_rgb(image)
    histogram = image.histogram()
    bands = [histogram[i * 256 : (i + 1) * 256] for i in range(3)]
    area = image.size[0] * image.size[1]
    cumulative = [_cumulative(band) for band in bands]
    minimums = _min_cdfs(cumulative)
    luts = [_equalize_lut(cdf, low, area) for cdf, low in zip(cumulative, minimums, strict=True)]
    return pixels.apply_luts(image, *luts)


def _cumulative(band: list[int]) -> list[int]:
    total, cdf = 0, []
    for count in band:
        total += count
        cdf.append(total if count else 0)
    return cdf


def _min_cdfs(cumulative: list[list[int]]) -> list[int]:
    # Thumbor stops at the first level where any channel has pixels; channels that have
    # none there keep a minimum of 0.
    for level in range(256):
        values = [cdf[level] for cdf in cumulative]
        if any(values):
            return values
    return [0, 0, 0]


def _equalize_lut(cdf: list[int], low: int, area: int) -> pixels.Lut:
    if area == low:
        return list(pixels.IDENTITY)
    return [pixels.clamp((cdf[v] - low) / (area - low) * 255.0) for v in range(256)]


@image_filter(DECIMAL)
def saturation(image: Image.Image, ctx: FilterContext, change: float) -> Image.Image:
    """``saturation(F)``: move each colour away from (F > 1) or towards its luminance."""

    def strip(part: Image.Image) -> Image.Image:
        values = pixels.to_array(part).astype(np.float32)
        colour = values[:, :, :3]
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        luminance = np.sqrt((colour * colour * weights).sum(axis=2, keepdims=True))
        values[:, :, :3] = luminance + (colour - luminance) * np.float32(change)
        return pixels.from_array(values, part.mode)

    return pixels.in_strips(pixels.as_rgb(image), strip, checkpoint=ctx.checkpoint)


@image_filter(POSITIVE_NUMBER, POSITIVE_NUMBER)
def noise(image: Image.Image, ctx: FilterContext, amount: int, seed: int = 0) -> Image.Image:
    """``noise(amount[,seed])``: add the same random offset in ±amount/2 to R, G and B."""
    if amount <= 0:
        return image
    amount = min(amount, 255)  # larger offsets only saturate, and overflow int16
    generator = np.random.default_rng(seed if seed > 0 else None)

    def strip(part: Image.Image) -> Image.Image:
        values = pixels.to_array(part).astype(np.int16)
        offsets = generator.integers(0, amount, size=values.shape[:2], dtype=np.int16)
        values[:, :, :3] += (offsets - (amount >> 1))[:, :, np.newaxis]
        return pixels.from_array(values, part.mode)

    return pixels.in_strips(pixels.as_rgb(image), strip, checkpoint=ctx.checkpoint)


@image_filter()
def grayscale(image: Image.Image, ctx: FilterContext) -> Image.Image:
    """``grayscale()``: luminance only (LA when the image has alpha, as Thumbor)."""
    return image.convert("LA" if pixels.has_alpha(image) else "L")
