"""Neighbourhood filters: blur, convolution, sharpen (Thumbor's wavelet sharpen), red_eye."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from thumbor_py.errors import FilterArgumentError, FilterError
from thumbor_py.imaging import pixels
from thumbor_py.imaging.filters import (
    BOOLEAN,
    DECIMAL,
    POSITIVE_NON_ZERO_NUMBER,
    Arg,
    FilterContext,
    image_filter,
)

_MATRIX = Arg(r"-?\d+(?:\.\d*)?(?:;-?\d+(?:\.\d*)?)*", str)
_FACE_ORIGIN = "Face Detection"
_WAVELET_REACH = 32


@image_filter(POSITIVE_NON_ZERO_NUMBER, DECIMAL)
def blur(image: Image.Image, ctx: FilterContext, radius: int, sigma: float = 0.0) -> Image.Image:
    """``blur(radius[,sigma])``: Gaussian blur; sigma defaults to the radius (max 150).

    Pillow's C ``GaussianBlur`` of the same spread as Thumbor's ``2·radius+1``-tap kernel:
    its cost does not grow with the radius.
    """
    return pixels.blur(image, radius, sigma)


@image_filter(_MATRIX, POSITIVE_NON_ZERO_NUMBER, BOOLEAN)
def convolution(
    image: Image.Image, ctx: FilterContext, matrix: str, columns: int, normalize: bool = True
) -> Image.Image:
    """``convolution(a;b;…,columns[,normalize])``: an odd-sized kernel over every band.

    Kernels up to 5x5 run in Pillow's C ``Kernel`` filter; larger ones (up to
    ``imaging.max_kernel_size`` a side) in NumPy, refused (400) when over a work budget.
    """
    size = matrix.count(";") + 1
    side = ctx.max_kernel_size
    if columns > side or size > side * side:
        raise FilterError(f"convolution: over the {side}x{side} max_kernel_size limit")
    if size % columns or size % 2 == 0 or (size // columns) % 2 == 0:
        raise FilterArgumentError(f"convolution: {size} items do not make an odd-sided kernel")
    values = [float(item) for item in matrix.split(";")]
    kernel = np.array(values, dtype=np.float64).reshape(size // columns, columns)
    total = kernel.sum()
    if normalize and total != 0:
        kernel = kernel / total
    return pixels.convolve_image(image, kernel, ctx.checkpoint)


@image_filter(DECIMAL, DECIMAL, BOOLEAN)
def sharpen(
    image: Image.Image, ctx: FilterContext, amount: float, radius: float, luminance_only: bool
) -> Image.Image:
    """``sharpen(amount,radius,luminance_only)``: wavelet sharpening (Marco Rossini's).

    Done in strips: five levels of ``_hat`` reach 1+2+4+8+16 = 31 rows each way.
    """

    def strip(part: Image.Image) -> Image.Image:
        return _sharpen(part, amount, radius, luminance_only)

    return pixels.in_strips(
        pixels.as_rgb(image), strip, support=_WAVELET_REACH, checkpoint=ctx.checkpoint
    )


def _sharpen(image: Image.Image, amount: float, radius: float, luminance_only: bool) -> Image.Image:
    values = pixels.to_array(image).astype(np.float32)
    colour = values[:, :, :3]
    if luminance_only:
        colour = _to_ycbcr(colour)
        colour[:, :, 0] = _wavelet_sharpen(colour[:, :, 0] / 255.0, amount, radius) * 255.0
        colour = _from_ycbcr(colour)
    else:
        for band in range(3):
            sharpened = _wavelet_sharpen(colour[:, :, band] / 255.0, amount, radius)
            colour[:, :, band] = sharpened * 255.0
    values[:, :, :3] = colour
    return pixels.from_array(values, image.mode)


def _hat(values: npt.NDArray[np.float32], axis: int, step: int) -> npt.NDArray[np.float32]:
    """``2·v[i] + v[i-step] + v[i+step]`` along ``axis``, mirrored at the edges, ÷4."""
    size = values.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (step, step)
    padded = np.pad(values, pad, mode="reflect" if size > 1 else "edge")
    before = np.take(padded, range(0, size), axis=axis)
    after = np.take(padded, range(2 * step, 2 * step + size), axis=axis)
    return ((2 * values + before + after) * np.float32(0.25)).astype(np.float32)


def _wavelet_sharpen(
    channel: npt.NDArray[np.float32], amount: float, radius: float
) -> npt.NDArray[np.float32]:
    levels: list[npt.NDArray[np.float32]] = [channel.astype(np.float32), channel, channel]
    high = 0
    low = 1
    for level in range(5):
        low = (level & 1) + 1
        levels[low] = _hat(_hat(levels[high], 1, 1 << level), 0, 1 << level)
        weight = np.float32(amount * math.exp(-(level - radius) * (level - radius) / 1.5) + 1.0)
        levels[high] = (levels[high] - levels[low]) * weight
        if high:
            levels[0] = levels[0] + levels[high]
        high = low
    return levels[0] + levels[low]


def _to_ycbcr(rgb: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    matrix = np.array(
        [[0.299, 0.587, 0.114], [-0.1687, -0.3313, 0.5], [0.5, -0.4187, -0.0813]],
        dtype=np.float32,
    )
    out = rgb @ matrix.T
    out[:, :, 1:] += 128.0
    return out.astype(np.float32)


def _from_ycbcr(ycc: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    y, cb, cr = ycc[:, :, 0], ycc[:, :, 1] - 128.0, ycc[:, :, 2] - 128.0
    return np.stack(
        [y + 1.402 * cr, y - 0.34414 * cb - 0.71414 * cr, y + 1.772 * cb], axis=2
    ).astype(np.float32)


@image_filter(name="red_eye")
def red_eye(image: Image.Image, ctx: FilterContext) -> Image.Image:
    """``red_eye()``: desaturate red pupils inside detected faces (needs a face detector).

    Without OpenCV's eye cascade, the upper half of each face is searched for pixels whose
    red is over twice the mean of green and blue (and over 60), as Thumbor's mask does.
    """
    faces = [point for point in ctx.focal_points if point.origin == _FACE_ORIGIN]
    mapped = ctx.map_point
    if not faces or mapped is None:
        return image
    image = pixels.as_rgb(image).copy()
    for face in faces:
        left, top = mapped(face.x - face.width / 2, face.y - face.height / 2)
        right, bottom = mapped(face.x + face.width / 2, face.y)
        box = (max(int(left), 0), max(int(top), 0), max(int(right), 0), max(int(bottom), 0))
        box = (box[0], box[1], min(box[2], image.width), min(box[3], image.height))
        if box[2] > box[0] and box[3] > box[1]:
            image.paste(_without_red_eye(image.crop(box)), box[:2])
    return image


def _without_red_eye(part: Image.Image) -> Image.Image:
    """Pupil-red pixels (red over twice the mean of green and blue, and over 60) set to
    that mean, as Thumbor's mask does; only the face's box is converted to integers."""
    values = pixels.to_array(part).astype(np.int32)
    red, mean = values[:, :, 0], (values[:, :, 1] + values[:, :, 2]) // 2
    mask = (red > 2 * mean) & (red > 60)
    red[mask] = mean[mask]
    return pixels.from_array(values, part.mode)
