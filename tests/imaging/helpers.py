"""Small typed helpers shared by the imaging tests."""

from __future__ import annotations

from PIL import Image


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at ``xy`` as a tuple of bands (Pillow types ``getpixel`` loosely)."""
    value = image.getpixel(xy)
    assert isinstance(value, tuple), f"{image.mode} pixel {value!r} is not a tuple of bands"
    return value
