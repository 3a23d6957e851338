"""Decoding with limits, EXIF orientation, and encoding to the formats browsers take."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from thumbor_py.errors import ImageDecodeError, ImageTooLargeError

# Pillow's own bomb guard stays on as a backstop; ours (max_pixels) is checked first.
Image.MAX_IMAGE_PIXELS = 200_000_000

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
}
FORMAT_NAMES = {
    "jpeg": "JPEG",
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "avif": "AVIF",
}
_EXIF_ORIENTATION = 0x0112
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class Opened:
    """A lazily opened image: header read, pixels not yet decoded."""

    image: Image.Image
    format: str
    size: tuple[int, int]
    oriented_size: tuple[int, int]
    orientation: int
    frames: int


def open_image(data: bytes, *, max_pixels: int, respect_orientation: bool) -> Opened:
    """Read the header only, and refuse sources over ``max_pixels`` (frames counted)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            frames = getattr(image, "n_frames", 1)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageDecodeError(_decode_reason(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError("source is not a decodable image") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError("source image has no pixels")
    if width * height * frames > max_pixels:
        raise ImageTooLargeError(
            f"source is {width}x{height} with {frames} frame(s), over the {max_pixels}-pixel limit"
        )
    orientation = _orientation(image) if respect_orientation else 1
    oriented = (height, width) if orientation in _SWAPPED_ORIENTATIONS else (width, height)
    return Opened(image, image.format or "", (width, height), oriented, orientation, frames)


def _decode_reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "source is not an image (cannot identify its format)"
    return "source image is too large to decode safely"


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def load_pixels(opened: Opened, draft_size: tuple[int, int] | None) -> Image.Image:
    """Decode the first frame, using JPEG DCT scaling towards ``draft_size`` when given."""
    image = opened.image
    try:
        if draft_size is not None and opened.format == "JPEG":
            # Drafting in the stored orientation: swap the box for rotated images.
            box = draft_size[::-1] if opened.orientation in _SWAPPED_ORIENTATIONS else draft_size
            image.draft(image.mode if image.mode in ("RGB", "L", "CMYK") else None, box)
        image.load()
        if opened.orientation != 1:
            image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError("source image is truncated or corrupt") from exc
    return image


def default_output_format(source_format: str, image: Image.Image) -> str:
    """The output format when the URL asks for none: the source's, if browsers take it."""
    if source_format in CONTENT_TYPES and source_format != "AVIF":
        return source_format
    if source_format == "AVIF":
        return "AVIF"
    return "PNG" if _has_alpha(image) else "JPEG"


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodeOptions:
    """How to write the output."""

    format: str
    quality: int
    progressive: bool = True
    icc_profile: bytes | None = None
    exif: bytes | None = None


def encode(image: Image.Image, options: EncodeOptions) -> bytes:
    """Encode ``image``; the bytes' format is exactly ``options.format``."""
    fmt = options.format
    image = _convert_for(image, fmt)
    params: dict[str, object] = {}
    if options.icc_profile:
        params["icc_profile"] = options.icc_profile
    if options.exif:
        params["exif"] = options.exif
    if fmt == "JPEG":
        params.update(quality=options.quality, optimize=True, progressive=options.progressive)
    elif fmt == "WEBP":
        params.update(quality=options.quality, method=4, lossless=options.quality >= 100)
    elif fmt == "AVIF":
        params.update(quality=options.quality)
    elif fmt == "PNG":
        params.update(optimize=False, compress_level=6)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _convert_for(image: Image.Image, fmt: str) -> Image.Image:
    mode = image.mode
    if fmt == "JPEG":
        # Like Thumbor: alpha is dropped, not composited (background_color() composites).
        return image if mode == "RGB" else image.convert("RGB")
    if fmt == "GIF":
        return (
            image if mode in ("P", "L") else image.convert("RGBA" if _has_alpha(image) else "RGB")
        )
    if fmt in ("PNG", "WEBP", "AVIF"):
        if mode in ("RGB", "RGBA", "L", "LA") or (mode == "P" and fmt == "PNG"):
            return image
        return image.convert("RGBA" if _has_alpha(image) else "RGB")
    return image
