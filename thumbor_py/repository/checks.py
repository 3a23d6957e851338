"""Is an upload an image we accept? The renderer's own decoding, with the same limits.

Synchronous (Pillow): call :func:`inspect` off the event loop. It reads the header through
``formats.open_image`` (the pixel and frame limits refuse bombs before any decoding), then
decodes the first frame through ``formats.load_pixels``, so what is accepted is what the
renderer can serve.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    PreconditionFailedError,
    UnsupportedMediaTypeError,
)
from thumbor_py.imaging import formats


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """What an upload must satisfy (Thumbor's ``UPLOAD_MAX_SIZE`` and minimum dimensions)."""

    max_bytes: int
    min_width: int = 1
    min_height: int = 1


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the decoder saw: the format, its content type, the size as displayed, frames."""

    format: str
    content_type: str
    width: int
    height: int
    frames: int


def check_size(size: int, limits: UploadLimits) -> None:
    """412 when ``size`` bytes are over the limit (checked before anything is decoded)."""
    if size > limits.max_bytes:
        raise PreconditionFailedError(f"image is over the {limits.max_bytes}-byte upload limit")
    if size == 0:
        raise UnsupportedMediaTypeError("the body is empty, not an image")


def inspect(data: bytes, imaging: ImagingConfig, limits: UploadLimits) -> ImageInfo:
    """The image ``data`` holds; 415 when it is not one we serve, 412 when over a limit or
    under the minimum dimensions."""
    check_size(len(data), limits)
    try:
        opened = formats.open_image(
            data,
            max_pixels=imaging.max_pixels,
            respect_orientation=imaging.respect_orientation,
            max_frames=imaging.max_frames,
        )
    except ImageTooLargeError as exc:
        raise PreconditionFailedError(exc.reason) from exc
    except ImageDecodeError as exc:
        raise _not_an_image(exc) from exc
    content_type = formats.CONTENT_TYPES.get(opened.format)
    if content_type is None:
        raise UnsupportedMediaTypeError(f"{opened.format or 'this'} images are not accepted")
    width, height = opened.oriented_size
    if width < limits.min_width or height < limits.min_height:
        raise PreconditionFailedError(
            f"image is {width}x{height}, under the minimum {limits.min_width}x{limits.min_height}"
        )
    try:
        formats.load_pixels(opened, None)
    except ImageDecodeError as exc:
        raise UnsupportedMediaTypeError("image is truncated or corrupt") from exc
    return ImageInfo(opened.format, content_type, width, height, opened.frames)


def _not_an_image(exc: ImageDecodeError) -> PreconditionFailedError | UnsupportedMediaTypeError:
    # Pillow's own bomb check (by the cause's type): a size limit, not a wrong media type.
    if isinstance(exc.__cause__, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return PreconditionFailedError(exc.reason)
    return UnsupportedMediaTypeError(exc.reason)
