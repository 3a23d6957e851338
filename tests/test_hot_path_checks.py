"""Per-request checks made cheaper keep their answers: the loader's identity (looked up
once per loader class instead of a protocol check per request) and Thumbor's blur kernel."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from thumbor_py.coherence import Coherence, MemoryPurgeLog
from thumbor_py.imaging import pixels
from thumbor_py.plugins import Source


class Plain:
    async def load(self, source: str) -> Source:
        return Source(b"")


class Lowering:
    def identity(self, source: str) -> str:
        return source.lower()

    async def load(self, source: str) -> Source:
        return Source(b"")


def test_identity_answers_per_loader_class_whatever_was_asked_before() -> None:
    plain = Coherence(MemoryPurgeLog(), Plain())
    lowering = Coherence(MemoryPurgeLog(), Lowering())
    for _ in range(3):  # alternate: a per-class answer must not leak into the other class
        assert plain.identity("/A.jpg") == "/A.jpg"
        assert lowering.identity("/A.jpg") == "/a.jpg"


def _thumbor_blur(image: Image.Image, radius: int, sigma: float) -> npt.NDArray[np.float64]:
    """Thumbor's separable ``2*radius+1``-tap Gaussian in floats, edges repeated."""
    weights = pixels.gaussian_kernel(radius, sigma)
    values = np.asarray(image).astype(np.float64)
    padded = np.pad(values, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    height, width = values.shape[:2]
    rows = sum(w * padded[:, i : i + width] for i, w in enumerate(weights))
    columns: npt.NDArray[np.float64] = sum(w * rows[i : i + height] for i, w in enumerate(weights))
    return np.rint(columns)


@pytest.mark.parametrize(
    ("mode", "radius", "sigma"),
    [("RGB", 1, 0.0), ("RGB", 3, 0.0), ("RGB", 3, 1.0), ("RGBA", 5, 2.5), ("RGB", 24, 0.0)],
)
def test_small_blurs_apply_thumbors_exact_kernel(mode: str, radius: int, sigma: float) -> None:
    rng = np.random.default_rng(radius)
    array = rng.integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    image = Image.fromarray(array)
    blurred = pixels.blur(image, radius, sigma)
    assert (blurred.mode, blurred.size) == (mode, image.size)
    expected = _thumbor_blur(image, radius, sigma or float(radius))
    assert np.abs(np.asarray(blurred).astype(np.float64) - expected).max() <= 1


def test_a_grey_image_is_blurred_in_rgb_and_a_large_radius_takes_the_box_blur() -> None:
    grey = Image.linear_gradient("L").resize((64, 48))
    assert pixels.blur(grey, 3).mode == "RGB"
    wide = Image.new("RGB", (60, 40), "red")
    wide.paste((0, 0, 255), (0, 0, 30, 40))
    blurred = pixels.blur(wide, 40)  # past the exact kernel's radius: Pillow's GaussianBlur
    assert blurred.size == wide.size
    left, right = blurred.getpixel((0, 20)), blurred.getpixel((59, 20))
    assert isinstance(left, tuple)
    assert isinstance(right, tuple)
    assert left[2] > left[0]
    assert right[0] > right[2]
