"""``trim`` in strips finds the box the whole-image difference finds."""

from __future__ import annotations

import itertools
import random

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageMath

from thumbor_py.imaging import trim
from thumbor_py.imaging.geometry import Box
from thumbor_py.url import Trim


def whole_image_box(image: Image.Image, spec: Trim) -> Box | None:
    """The box as one whole-image difference computes it (the reference)."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    corner = (0, 0) if spec.corner == "top-left" else (width - 1, height - 1)
    reference = Image.new("RGB", rgb.size, rgb.getpixel(corner))  # type: ignore[arg-type]
    diff = ImageChops.difference(rgb, reference)
    if not spec.tolerance:
        bbox = diff.getbbox()
    else:
        red, green, blue = (channel.convert("I") for channel in diff.split())
        limit = spec.tolerance * spec.tolerance
        mask = ImageMath.lambda_eval(
            lambda a: ((a["r"] * a["r"] + a["g"] * a["g"] + a["b"] * a["b"]) > limit) * 255,
            r=red,
            g=green,
            b=blue,
        )
        bbox = mask.convert("L").getbbox()
    return Box(*bbox) if bbox is not None else None


def sample(seed: int) -> Image.Image:
    rng = random.Random(seed)
    width, height = rng.randint(5, 200), rng.randint(5, 200)
    image = Image.new("RGB", (width, height), (rng.randint(0, 255),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):
        left, top = rng.randint(0, width - 1), rng.randint(0, height - 1)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        draw.rectangle((left, top, left + rng.randint(0, 40), top + rng.randint(0, 40)), colour)
    return image.convert(rng.choice(["RGB", "RGBA", "L", "LA", "P"]))


@pytest.mark.parametrize("seed", range(24))
def test_strips_find_the_whole_image_box(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trim, "STRIP_PIXELS", 500)  # strips of 16 rows or so
    image = sample(seed)
    for corner, tolerance in itertools.product(("top-left", "bottom-right"), (0, 5, 40)):
        spec = Trim(corner, tolerance)  # type: ignore[arg-type]
        assert trim.trim_box(image, spec) == whole_image_box(image, spec), (corner, tolerance)


def test_trim_checks_the_deadline_between_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trim, "STRIP_PIXELS", 100 * 16)
    calls: list[int] = []
    trim.trim_box(Image.new("RGB", (100, 160)), Trim(), lambda: calls.append(1))
    assert len(calls) == 10
