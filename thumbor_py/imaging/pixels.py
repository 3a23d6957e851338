"""Pixel arithmetic shared by the filters: Thumbor's RGB(A) working modes, LUTs, convolution.

Thumbor's C filters work on 8-bit RGB or RGBA buffers with C integer arithmetic (division
truncates towards zero, results are clamped to 0..255); these helpers reproduce that with
Pillow look-up tables or NumPy, so the filters themselves stay a few lines each.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from thumbor_py.errors import FilterError

FloatArray = npt.NDArray[np.float32] | npt.NDArray[np.float64]
ByteArray = npt.NDArray[np.uint8]
Lut = list[int]
IDENTITY: Lut = list(range(256))
# The work (non-zero taps x pixels) a NumPy convolution may take: about a second of CPU.
MAX_TAP_PIXELS = 30_000_000
_PILLOW_KERNEL = 5
# Blurs up to this radius apply Thumbor's exact kernel (cheaper than the box-blur stand-in).
_EXACT_BLUR_RADIUS = 24
# ... on images up to this size (it holds two copies of the pixels besides the image).
_EXACT_BLUR_PIXELS = 4_000_000
# NumPy filters work on strips of about this many pixels, so their float copies stay small
# (a 40-megapixel output as one float32 RGBA array would be 640 MB).
STRIP_PIXELS = 1_000_000
_MIN_STRIP_ROWS = 64


def cdiv(numerator: int, denominator: int) -> int:
    """C integer division: truncates towards zero (Python's ``//`` floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator >= 0) else -quotient


def clamp(value: float) -> int:
    """Thumbor's ``ADJUST_COLOR``: truncate to an int, then clamp into 0..255."""
    return min(max(int(value), 0), 255)


def as_rgb(image: Image.Image) -> Image.Image:
    """The image in Thumbor's working mode: RGBA when it has alpha, RGB otherwise."""
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.convert("RGBA" if "A" in image.mode else "RGB")


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries an alpha channel or a transparent palette entry."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def apply_luts(image: Image.Image, red: Lut, green: Lut, blue: Lut) -> Image.Image:
    """Map each colour channel through its table; alpha is kept as it is."""
    image = as_rgb(image)
    tables = red + green + blue + (IDENTITY if image.mode == "RGBA" else [])
    return image.point(tables)


def in_strips(
    image: Image.Image,
    function: Callable[[Image.Image], Image.Image],
    *,
    support: int = 0,
    checkpoint: Callable[[], None] = lambda: None,
) -> Image.Image:
    """``function`` applied to horizontal strips of ``image``, the results pasted together.

    ``function`` must keep the size, and each output row may depend on input rows at most
    ``support`` away: every strip is cut with that many extra rows above and below, then
    trimmed, so the result is the same as one call on the whole image. ``checkpoint`` runs
    before each strip.
    """
    width, height = image.size
    rows = max(_MIN_STRIP_ROWS, STRIP_PIXELS // max(width, 1))
    if rows >= height:
        checkpoint()
        return function(image)
    out: Image.Image | None = None
    for top in range(0, height, rows):
        checkpoint()
        bottom = min(top + rows, height)
        low, high = max(top - support, 0), min(bottom + support, height)
        done = function(image.crop((0, low, width, high)))
        if out is None:
            out = Image.new(done.mode, image.size)
        out.paste(done.crop((0, top - low, width, bottom - low)), (0, top))
    assert out is not None
    return out


def to_array(image: Image.Image) -> ByteArray:
    """An (height, width, bands) uint8 view copy of an RGB or RGBA image."""
    return np.asarray(image, dtype=np.uint8).reshape(image.size[1], image.size[0], -1).copy()


def from_array(values: npt.NDArray[np.generic], mode: str) -> Image.Image:
    """An image from an array of 0..255 values (truncated, clamped, as Thumbor's C does)."""
    clipped = np.clip(np.trunc(values), 0, 255).astype(np.uint8)
    if clipped.shape[2] == 1:
        return Image.fromarray(clipped[:, :, 0], "L")
    return Image.fromarray(clipped, mode)


def convolve(
    values: npt.NDArray[np.generic], kernel: FloatArray, checkpoint: Callable[[], None]
) -> npt.NDArray[np.float32]:
    """Correlate every band with ``kernel`` (rows x columns), clamping at the edges; one
    pass per tap, with ``checkpoint`` called between them."""
    rows, columns = kernel.shape
    height, width = values.shape[:2]
    padded = np.pad(
        values.astype(np.float32),
        ((rows // 2, rows // 2), (columns // 2, columns // 2), (0, 0)),
        mode="edge",
    )
    out = np.zeros(values.shape, dtype=np.float32)
    for row in range(rows):
        for column in range(columns):
            weight = float(kernel[row, column])
            if weight:
                checkpoint()
                out += np.float32(weight) * padded[row : row + height, column : column + width]
    return out


def convolve_image(
    image: Image.Image, kernel: FloatArray, checkpoint: Callable[[], None] = lambda: None
) -> Image.Image:
    """One pass of Thumbor's ``_convolution``: every band (alpha too), truncated to bytes.

    Up to 5x5, Pillow's C ``Kernel`` filter does it (zero-padded to a square, the edges
    replicated first, as Thumbor clamps them); larger kernels take one NumPy pass per tap
    and are refused (FilterError, 400) when taps x pixels is over :data:`MAX_TAP_PIXELS`.
    """
    image = as_rgb(image)
    rows, columns = kernel.shape
    if rows <= _PILLOW_KERNEL and columns <= _PILLOW_KERNEL:
        return _pillow_convolve(image, kernel)
    taps = int(np.count_nonzero(kernel))
    if taps * image.width * image.height > MAX_TAP_PIXELS:
        raise FilterError(
            f"convolution: a {rows}x{columns} kernel on {image.width}x{image.height} is over "
            f"the work limit; use a kernel of 5x5 or less"
        )
    return from_array(convolve(to_array(image), kernel, checkpoint), image.mode)


def _pillow_convolve(image: Image.Image, kernel: FloatArray) -> Image.Image:
    side = 3 if kernel.shape[0] <= 3 and kernel.shape[1] <= 3 else _PILLOW_KERNEL
    square = np.zeros((side, side), dtype=np.float64)
    top, left = (side - kernel.shape[0]) // 2, (side - kernel.shape[1]) // 2
    square[top : top + kernel.shape[0], left : left + kernel.shape[1]] = kernel
    # Pillow rounds to nearest where Thumbor's C truncates: shift by half a level.
    flt = ImageFilter.Kernel((side, side), square.ravel().tolist(), scale=1, offset=-0.5)
    pad = side // 2
    return (
        _pad_edges(image, pad).filter(flt).crop((pad, pad, pad + image.width, pad + image.height))
    )


def _pad_edges(image: Image.Image, pad: int) -> Image.Image:
    """``image`` with ``pad`` pixels around it, each a copy of the nearest edge pixel."""
    width, height = image.size
    out = Image.new(image.mode, (width + 2 * pad, height + 2 * pad))
    out.paste(image, (pad, pad))
    nearest = Image.Resampling.NEAREST
    out.paste(image.crop((0, 0, 1, height)).resize((pad, height), nearest), (0, pad))
    right = image.crop((width - 1, 0, width, height)).resize((pad, height), nearest)
    out.paste(right, (width + pad, pad))
    full = width + 2 * pad
    out.paste(out.crop((0, pad, full, pad + 1)).resize((full, pad), nearest), (0, 0))
    bottom = out.crop((0, height + pad - 1, full, height + pad)).resize((full, pad), nearest)
    out.paste(bottom, (0, height + pad))
    return out


def gaussian_kernel(radius: int, sigma: float) -> npt.NDArray[np.float64]:
    """Thumbor's blur kernel: ``2*radius+1`` taps of a Gaussian of ``sigma``, normalised."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-(offsets * offsets) / (2.0 * sigma * sigma))
    normalized: npt.NDArray[np.float64] = weights / weights.sum()
    return normalized


def kernel_spread(radius: int, sigma: float) -> float:
    """The standard deviation of Thumbor's (truncated) blur kernel, in pixels."""
    weights = gaussian_kernel(radius, sigma)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    return float(np.sqrt((weights * offsets * offsets).sum()))


def blur(image: Image.Image, radius: int, sigma: float = 0.0) -> Image.Image:
    """Thumbor's Gaussian blur: its own ``2*radius+1``-tap kernel up to ``_EXACT_BLUR_RADIUS``,
    beyond that Pillow's C ``GaussianBlur`` with the same spread.

    Thumbor convolves with ``2*radius+1`` taps (radius capped at 150), which costs a pass
    per tap. Up to radius 24 OpenCV's separable filter applies that exact kernel (edges
    repeated) faster than any approximation: 0.13 ms for 200x200 at radius 3, against
    1.3 ms for Pillow's ``GaussianBlur``. Beyond it the cost of the taps overtakes Pillow's
    extended box blur, which costs the same for any radius; its spread is capped at the
    image's longer side: beyond that every blur looks the same. Images over 4 megapixels
    take Pillow's path too, which needs no copies of the pixels.
    """
    radius = min(radius, 150)
    sigma = sigma or float(radius)
    image = as_rgb(image)
    if radius <= _EXACT_BLUR_RADIUS and image.width * image.height <= _EXACT_BLUR_PIXELS:
        weights = gaussian_kernel(radius, sigma)
        pixels = np.asarray(image)
        blurred = cv2.sepFilter2D(pixels, -1, weights, weights, borderType=cv2.BORDER_REPLICATE)
        return Image.fromarray(blurred)
    spread = min(kernel_spread(radius, sigma), float(max(image.size)))
    return image.filter(ImageFilter.GaussianBlur(spread))


def curve_lut(points: Sequence[tuple[int, int]]) -> Lut:
    """Thumbor's natural cubic spline through ``points``, as a 256-entry table."""
    if not points:
        return list(IDENTITY)
    xs = [x & 0xFF for x, _ in points]
    ys = [y & 0xFF for _, y in points]
    second = _second_derivative(xs, ys)
    table = [ys[0]] * 256
    for i in range(len(xs) - 1):
        x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
        span = x1 - x0
        for x in range(x0, x1):
            t = (x - x0) / span
            a, b = 1 - t, t
            y = (
                a * y0
                + b * y1
                + (span * span / 6) * ((a**3 - a) * second[i] + (b**3 - b) * second[i + 1])
            )
            table[x] = min(max(round(y), 0), 255)
    for x in range(xs[-1], 256):
        table[x] = ys[-1]
    return table


def _second_derivative(xs: list[int], ys: list[int]) -> list[float]:
    """Second derivatives of the natural spline (a tridiagonal solve)."""
    n = len(xs)
    if any(b <= a for a, b in itertools.pairwise(xs)):
        raise ValueError("curve points must have increasing x")
    lower, diagonal, upper, result = [0.0] * n, [1.0] * n, [0.0] * n, [0.0] * n
    for i in range(1, n - 1):
        lower[i] = (xs[i] - xs[i - 1]) / 6
        diagonal[i] = (xs[i + 1] - xs[i - 1]) / 3
        upper[i] = (xs[i + 1] - xs[i]) / 6
        result[i] = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) - (ys[i] - ys[i - 1]) / (
            xs[i] - xs[i - 1]
        )
    for i in range(1, n):
        k = lower[i] / diagonal[i - 1]
        diagonal[i] -= k * upper[i - 1]
        result[i] -= k * result[i - 1]
    for i in range(n - 2, -1, -1):
        k = upper[i] / diagonal[i + 1]
        result[i] -= k * result[i + 1]
    return [result[i] / diagonal[i] for i in range(n)]


def min_value(band: Image.Image) -> float:
    """The smallest value of a single-band image."""
    low = band.getextrema()[0]
    return float(low) if isinstance(low, int | float) else 0.0
