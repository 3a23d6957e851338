"""The last step of a render: encode the frames into the response body."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.etags import etag_for
from thumbor_py.imaging import formats
from thumbor_py.imaging.plan import Budget, OutputOptions

_QUALITY_FORMATS = frozenset({"JPEG", "WEBP", "AVIF", "HEIF"})
_SLOW_FORMATS = frozenset({"AVIF", "HEIF"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """A finished response body and what the HTTP layer needs to know about it."""

    data: bytes
    content_type: str
    width: int
    height: int
    max_age: int | None = None
    # Whether result storage may keep this body (the pipeline checks it before storing).
    cacheable: bool = True
    frames: int = 1
    # Derived from ``data`` here, in the render thread, so the event loop never hashes bodies.
    etag: str = dataclasses.field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", etag_for(self.data))


@dataclass(frozen=True, slots=True)
class Timing:
    """An animation's frame durations (ms) and loop count (None: the source had none)."""

    durations: tuple[int, ...] = ()
    loop: int | None = None


def encode(
    options: OutputOptions,
    opened: formats.Opened,
    frames: list[Image.Image],
    fmt: str,
    timing: Timing,
    config: ImagingConfig,
    budget: Budget | None = None,
) -> Rendered:
    """Encode the rendered frames as ``fmt`` with the options' quality, profile and EXIF;
    ``max_bytes()`` searches the highest quality that fits (the deadline checked before
    each encode). AVIF and HEIF over ``max_avif_pixels`` are encoded as WebP instead."""
    fmt = affordable_format(fmt, frames, config.max_avif_pixels)
    settings = _settings(options, opened, frames, fmt, timing, config)
    image: Image.Image | list[Image.Image] = frames if len(frames) > 1 else frames[0]

    def encoder(quality: int) -> bytes:
        if budget is not None:
            budget.checkpoint()
        return formats.encode(image, dataclasses.replace(settings, quality=quality))

    if options.max_bytes and fmt in _QUALITY_FORMATS:
        data = formats.fit_quality(encoder, options.quality, options.max_bytes)
    else:
        data = encoder(options.quality)
    return Rendered(
        data=data,
        content_type=formats.CONTENT_TYPES[fmt],
        width=frames[0].size[0],
        height=frames[0].size[1],
        max_age=options.max_age,
        frames=len(frames),
    )


def _settings(
    options: OutputOptions,
    opened: formats.Opened,
    frames: list[Image.Image],
    fmt: str,
    timing: Timing,
    config: ImagingConfig,
) -> formats.EncodeOptions:
    loop = timing.loop if timing.loop is not None or fmt == "GIF" else 1
    return formats.EncodeOptions(
        format=fmt,
        quality=options.quality,
        progressive=config.progressive_jpeg,
        icc_profile=None if options.strip_icc else formats.source_icc(opened),
        exif=None if options.strip_exif else _exif(opened),
        avif_speed=config.avif_speed,
        keep_palette=opened.mode in ("P", "1") and len(frames) == 1,
        durations=timing.durations[: len(frames)],
        loop=loop,
    )


def affordable_format(fmt: str, frames: list[Image.Image], max_avif_pixels: int) -> str:
    """``fmt``, or WebP for an AVIF or HEIF output over ``max_avif_pixels`` (all frames).

    Those encoders take about a second of CPU per megapixel of noisy content, in one call
    that no deadline can interrupt; WebP takes a fifth of that. 0 = no cap.
    """
    pixels = sum(frame.width * frame.height for frame in frames)
    if fmt in _SLOW_FORMATS and max_avif_pixels and pixels > max_avif_pixels:
        return "WEBP"
    return fmt


def _exif(opened: formats.Opened) -> bytes | None:
    exif_data = opened.image.getexif()
    exif_data.pop(0x0112, None)  # pixels are already upright
    return exif_data.tobytes() if exif_data else None
