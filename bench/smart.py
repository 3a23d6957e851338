"""The cost of ``smart``: median extra milliseconds per render on a 4000x3000 JPEG.

Run: ``.venv/bin/python -m bench.smart [--runs 15]``. The source is a sample cropped to 4:3,
upscaled with Lanczos and given sensor-like noise (quality 90, ~12 megapixels). Each round
renders ``300x200`` without ``smart``, with ``smart`` and a cold detection cache (the first
size of a photo), and with a warm one (its other sizes), in the render thread as the server
does. A portrait stops at the face detector; a photo without faces runs both detectors.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from thumbor_py.assembly import build_renderer
from thumbor_py.config import ImagingConfig
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.transform import Renderer
from thumbor_py.url import parse

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SIZE = (4000, 3000)


def phone_photo(name: str, seed: int = 1) -> bytes:
    """``samples/name`` cropped to 4:3, upscaled to 4000x3000 with Lanczos, plus noise."""
    image = Image.open(SAMPLES / name).convert("RGB")
    width, height = image.size
    crop_h = min(height, width * 3 // 4)
    crop_w = crop_h * 4 // 3
    image = image.crop((0, 0, crop_w, crop_h)).resize(SIZE, Image.Resampling.LANCZOS)
    noise = np.random.default_rng(seed).normal(0.0, 4.0, (SIZE[1], SIZE[0], 1))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _timed(renderer: Renderer, data: bytes, path: str) -> float:
    start = time.perf_counter()
    renderer.render(PixelSource("a.jpg", data), parse(path))
    return (time.perf_counter() - start) * 1000


def measure(data: bytes, runs: int) -> dict[str, float]:
    """Median milliseconds of a plain, a cold-cache smart and a warm-cache smart render."""
    config = ImagingConfig()
    warm = build_renderer(config)
    cold = build_renderer(dataclasses.replace(config, detection_cache_size=0))
    _timed(warm, data, "/unsafe/300x200/smart/a.jpg")  # loads the cascade, fills the cache
    _timed(cold, data, "/unsafe/300x200/smart/a.jpg")
    times: dict[str, list[float]] = {"plain": [], "smart (cold)": [], "smart (warm)": []}
    for _ in range(runs):
        times["plain"].append(_timed(warm, data, "/unsafe/300x200/a.jpg"))
        times["smart (cold)"].append(_timed(cold, data, "/unsafe/300x200/smart/a.jpg"))
        times["smart (warm)"].append(_timed(warm, data, "/unsafe/300x200/smart/a.jpg"))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for label, name in (("portrait (face)", "astronaut.jpg"), ("no face (features)", "coffee.jpg")):
        medians = measure(phone_photo(name), args.runs)
        plain = medians["plain"]
        print(
            f"{label:20} plain {plain:6.1f} ms | smart cold {medians['smart (cold)']:6.1f} ms "
            f"(+{medians['smart (cold)'] - plain:5.1f}) | smart warm "
            f"{medians['smart (warm)']:6.1f} ms (+{medians['smart (warm)'] - plain:5.1f})"
        )


if __name__ == "__main__":
    main()
