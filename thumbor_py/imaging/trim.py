"""``trim``: cut away the border coloured like a corner pixel, within a tolerance."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageMath

from thumbor_py.imaging.geometry import Box
from thumbor_py.url import Trim


def trim_box(image: Image.Image, trim: Trim) -> Box | None:
    """The bounding box of everything that differs from the corner's colour by more than
    the tolerance; None when nothing does (Thumbor then leaves the image alone)."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    corner = (0, 0) if trim.corner == "top-left" else (width - 1, height - 1)
    reference = Image.new("RGB", rgb.size, rgb.getpixel(corner))  # type: ignore[arg-type]
    diff = ImageChops.difference(rgb, reference)
    if trim.tolerance:
        red, green, blue = (channel.convert("I") for channel in diff.split())
        limit = trim.tolerance * trim.tolerance
        mask = ImageMath.lambda_eval(
            lambda a: ((a["r"] * a["r"] + a["g"] * a["g"] + a["b"] * a["b"]) > limit) * 255,
            r=red,
            g=green,
            b=blue,
        )
        bbox = mask.convert("L").getbbox()
    else:
        bbox = diff.getbbox()
    return Box(*bbox) if bbox is not None else None
