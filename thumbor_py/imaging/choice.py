"""The concrete output format of a render, chosen once the source is decoded.

The pipeline passes the *format class* :mod:`thumbor_py.negotiation` chose from ``Accept``
(``default``, ``webp``, ``avif`` or ``jpeg``); here it meets the source: a transparent image
is never made a JPEG, and an animation is only converted when
``imaging.auto_convert_animated`` says so (the class is then simply not applied: still
correct, since the result key only ever holds one answer per class).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import formats


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputChoice:
    """What :func:`output_format` needs to know about the decoded result."""

    requested: str | None
    format_class: str
    source_format: str
    image: Image.Image
    animated: bool
    auto_png_to_jpg: bool


def output_format(choice: OutputChoice, config: ImagingConfig) -> str:
    """The concrete output format, once the source is known."""
    if choice.requested:
        return choice.requested
    convertible = not choice.animated or config.auto_convert_animated
    if convertible and choice.format_class in ("avif", "webp"):
        return formats.FORMAT_NAMES[choice.format_class]
    default = formats.default_output_format(choice.source_format, choice.image)
    if default == "JPEG" or choice.animated:
        return default
    opaque = not formats.is_transparent(choice.image)
    if choice.format_class == "jpeg" and opaque:
        return "JPEG"
    if choice.auto_png_to_jpg and choice.source_format == "PNG" and opaque:
        return "JPEG"
    return default
