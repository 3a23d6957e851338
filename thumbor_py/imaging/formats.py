"""Decoding with limits, EXIF orientation, colour normalisation, and encoding to the formats
browsers take (JPEG, PNG, WebP, AVIF, GIF, and HEIF on request)."""

from __future__ import annotations

import contextvars
import functools
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from thumbor_py.errors import ImageDecodeError, ImageTooLargeError
from thumbor_py.imaging import palette
from thumbor_py.imaging.framesizes import check_frames
from thumbor_py.imaging.pixels import has_alpha, min_value

# Pillow's own bomb guard stays on as a backstop; ours (max_pixels) is checked first. The
# assembly applies it to the process at start-up (importing this module changes nothing).
PILLOW_MAX_IMAGE_PIXELS = 200_000_000

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
    "HEIF": "image/heif",
}
FORMAT_NAMES = {
    "jpeg": "JPEG",
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "avif": "AVIF",
    "heic": "HEIF",
    "heif": "HEIF",
}
# Formats served as they come when the URL asks for none; others become PNG or JPEG.
_WEB_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "AVIF"})
ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG", "AVIF"})
_EXIF_ORIENTATION = 0x0112
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}
# Over this many output pixels (all frames), encoders run at their fast setting: one encode
# call cannot be interrupted at a deadline. PNG at zlib level 1 (the same pixels; level 6
# takes about 0.3 s a megapixel on noisy content); WebP at method 0 (measured on a 20 MP
# photo: 0.47 s of CPU against 2.07 s at method 4, at the same quality setting).
_FAST_ENCODE_PIXELS = 4_000_000
_FAST_ENCODE: dict[str, dict[str, object]] = {"PNG": {"compress_level": 1}, "WEBP": {"method": 0}}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_JPEG_EOI = b"\xff\xd9"
# The source being rendered, for log lines only (set per request; the render thread runs in
# a copy of the request's context).
SOURCE_FOR_LOGS: contextvars.ContextVar[str] = contextvars.ContextVar("source", default="-")
log = logging.getLogger(__name__)


@functools.cache
def _register_heif() -> None:
    """HEIC/HEIF decoding and encoding through pillow-heif, registered once, on first use."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - an optional codec
        return
    pillow_heif.register_heif_opener()


@dataclass(frozen=True, slots=True)
class Opened:
    """A lazily opened image: header read, pixels not yet decoded."""

    image: Image.Image
    format: str
    size: tuple[int, int]
    oriented_size: tuple[int, int]
    orientation: int
    frames: int
    mode: str = ""
    # The encoded source, kept (not copied) so that a truncated JPEG can be decoded again.
    data: bytes = field(default=b"", repr=False)

    @property
    def animated(self) -> bool:
        """Whether the source is an animation (more than one frame)."""
        return self.frames > 1


def open_image(
    data: bytes, *, max_pixels: int, respect_orientation: bool, max_frames: int = 0
) -> Opened:
    """Read the header only; refuse sources over ``max_pixels`` (frames counted) or over
    ``max_frames`` frames (0 = no frame cap)."""
    _register_heif()
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
    if max_frames and frames > max_frames:
        raise ImageTooLargeError(f"source has {frames} frames, over the {max_frames}-frame limit")
    if width * height * frames > max_pixels:
        raise ImageTooLargeError(
            f"source is {width}x{height} with {frames} frame(s), over the {max_pixels}-pixel limit"
        )
    check_frames(image, data, frames, max_pixels)
    orientation = _orientation(image) if respect_orientation else 1
    oriented = (height, width) if orientation in _SWAPPED_ORIENTATIONS else (width, height)
    return Opened(
        image, image.format or "", (width, height), oriented, orientation, frames, image.mode, data
    )


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
    """Decode the first frame, using JPEG DCT scaling towards ``draft_size`` when given.

    A truncated JPEG is served as browsers and Thumbor show it: the rows that decode, the
    rest filled (unless no row decodes at all).
    """
    try:
        return _decode(opened, opened.image, draft_size)
    except _DECODE_ERRORS as exc:
        recovered = _decode_truncated_jpeg(opened, draft_size)
        if recovered is None:
            raise ImageDecodeError("source image is truncated or corrupt") from exc
        return recovered


def _decode(opened: Opened, image: Image.Image, draft_size: tuple[int, int] | None) -> Image.Image:
    image.seek(0)
    if draft_size is not None and opened.format == "JPEG":
        # Drafting in the stored orientation: swap the box for rotated images.
        box = draft_size[::-1] if opened.orientation in _SWAPPED_ORIENTATIONS else draft_size
        image.draft(image.mode if image.mode in ("RGB", "L", "CMYK") else None, box)
    image.load()
    if opened.orientation != 1:
        image = ImageOps.exif_transpose(image)
    return image


def _decode_truncated_jpeg(
    opened: Opened, draft_size: tuple[int, int] | None
) -> Image.Image | None:
    """The JPEG decoded again with its end-of-image marker supplied, for this image only
    (not Pillow's process-wide ``LOAD_TRUNCATED_IMAGES``); None when nothing decodes."""
    if opened.format != "JPEG" or opened.data.endswith(_JPEG_EOI):
        return None
    if not _has_scan_data(opened.data):
        return None  # cut before the first compressed byte: the decoder would invent rows
    try:
        image = _decode(opened, Image.open(io.BytesIO(opened.data + _JPEG_EOI)), draft_size)
        extrema = image.getextrema()
    except _DECODE_ERRORS:
        return None
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    if all(low == high for low, high in bands):  # type: ignore[misc]
        return None  # one flat fill: not a single row decoded
    log.warning(
        "truncated JPEG %s (%d bytes): serving the rows that decode, the rest filled",
        SOURCE_FOR_LOGS.get(),
        len(opened.data),
    )
    return image


def source_icc(opened: Opened) -> bytes | None:
    """The source's ICC profile, unless it describes a colour space the output will not be
    in (a CMYK profile: CMYK is converted to sRGB on load)."""
    icc = opened.image.info.get("icc_profile")
    if not icc or opened.mode == "CMYK":  # the source's mode (a cached master is RGB)
        return None
    return bytes(icc)


def _has_scan_data(data: bytes) -> bool:
    """Whether compressed bytes follow the first start-of-scan header (FFDA, length, ...)."""
    start = data.find(b"\xff\xda")
    if start < 0 or start + 4 > len(data):
        return False
    return start + 2 + int.from_bytes(data[start + 2 : start + 4], "big") < len(data)


def normalize_mode(image: Image.Image) -> Image.Image:
    """A mode every filter and encoder handles: 8-bit L, LA, RGB, RGBA or P.

    CMYK goes to sRGB through its embedded profile when there is one; 16-bit and 32-bit
    greys are scaled (Pillow's plain conversion would clip them to white).
    """
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "P"):
        return image
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode.startswith("I;16") or mode == "I":
        scale = 1 / 256 if mode.startswith("I;16") or _max_value(image) > 255 else 1
        return image.convert("I").point(lambda v: v * scale).convert("L")
    if mode == "F":
        return image.point(lambda v: v * 255).convert("L")
    if mode in ("1",):
        return image.convert("L")
    return image.convert("RGBA" if has_alpha(image) or "A" in mode else "RGB")


def _max_value(image: Image.Image) -> float:
    extrema = image.getextrema()
    return float(extrema[1]) if isinstance(extrema[1], int | float) else 255.0


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None
        if isinstance(converted, Image.Image):
            return converted
    return image.convert("RGB")


def default_output_format(source_format: str, image: Image.Image) -> str:
    """The output format when the URL asks for none: the source's, if browsers take it."""
    if source_format in _WEB_FORMATS:
        return source_format
    return "PNG" if has_alpha(image) else "JPEG"


def is_transparent(image: Image.Image) -> bool:
    """Whether any pixel is less than opaque (not just whether there is an alpha channel)."""
    if not has_alpha(image):
        return False
    return min_value(image.convert("RGBA").getchannel("A")) < 255


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodeOptions:
    """How to write the output."""

    format: str
    quality: int
    progressive: bool = True
    icc_profile: bytes | None = None
    exif: bytes | None = None
    avif_speed: int = 6
    keep_palette: bool = False
    durations: tuple[int, ...] = ()
    loop: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


def encode(image: Image.Image | list[Image.Image], options: EncodeOptions) -> bytes:
    """Encode an image (or the frames of an animation) as exactly ``options.format``."""
    frames = image if isinstance(image, list) else [image]
    fmt = options.format
    if fmt == "GIF":
        converted = palette.to_gif_frames(frames)
    else:
        converted = [_convert_for(frame, fmt, options.keep_palette) for frame in frames]
    params = _params(options, animated=len(converted) > 1)
    if sum(frame.width * frame.height for frame in converted) > _FAST_ENCODE_PIXELS:
        params.update(_FAST_ENCODE.get(fmt, {}))
    buffer = io.BytesIO()
    first, *rest = converted
    if rest:
        params.update(save_all=True, append_images=rest)
    try:
        first.save(buffer, fmt, **params)
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"cannot encode the image as {fmt}: {exc}") from exc
    return buffer.getvalue()


def _params(options: EncodeOptions, *, animated: bool) -> dict[str, object]:
    fmt = options.format
    params: dict[str, object] = dict(options.extra)
    if fmt != "GIF":
        # Explicit, even when empty: several encoders fall back to the image's own info.
        params["icc_profile"] = options.icc_profile or None
        params["exif"] = options.exif or (None if fmt == "HEIF" else b"")
    params.update(_codec_params(options))
    if animated and options.durations:
        params.update(duration=list(options.durations))
        if options.loop is not None:
            params.update(loop=options.loop)
        if fmt == "GIF":
            params.update(disposal=2)
    return params


def _codec_params(options: EncodeOptions) -> dict[str, object]:
    quality = options.quality
    codecs: dict[str, dict[str, object]] = {
        "JPEG": {"quality": quality, "optimize": True, "progressive": options.progressive},
        "WEBP": {"quality": quality, "method": 4, "lossless": quality >= 100},
        "AVIF": {"quality": quality, "speed": options.avif_speed},
        "HEIF": {"quality": quality},
        "PNG": {"optimize": False, "compress_level": 6},
    }
    return codecs.get(options.format, {})


def _convert_for(image: Image.Image, fmt: str, keep_palette: bool) -> Image.Image:
    mode = image.mode
    if fmt == "JPEG":
        # Like Thumbor: alpha is dropped, not composited (background_color() composites).
        return image if mode == "RGB" else image.convert("RGB")
    if fmt == "PNG" and keep_palette:
        return palette.to_palette(image)
    if mode in ("RGB", "RGBA") or (mode in ("L", "LA") and fmt in ("PNG", "WEBP")):
        return image
    if mode == "P" and fmt == "PNG":
        return image
    return image.convert("RGBA" if has_alpha(image) else "RGB")


Encoder = Callable[[int], bytes]


def fit_quality(encoder: Encoder, quality: int, max_bytes: int) -> bytes:
    """The output at the highest quality <= ``quality`` whose size is at most ``max_bytes``
    (a bisection: about log2(quality) encodes); the full-quality output when none fits."""
    best = encoder(quality)
    if len(best) <= max_bytes:
        return best
    fallback = best
    low, high = 1, quality - 1
    found: bytes | None = None
    while low <= high:
        middle = (low + high) // 2
        data = encoder(middle)
        if len(data) <= max_bytes:
            found, low = data, middle + 1
        else:
            high = middle - 1
    return found if found is not None else fallback
