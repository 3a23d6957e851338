"""The benchmark's source images, generated deterministically from ``samples/*.jpg``.

``large.jpg`` is phone-style: a sample upscaled to 4000x3000 with Lanczos, plus sensor-like
noise, saved at quality 90 (about 12 megapixels). The 20 srcset sources are the same kind of
image, each from a different sample, crop and noise seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.jpg"))
SRCSET_COUNT = 20
LARGE_SIZE = (4000, 3000)
_VERSION = "1"  # bump when the images change, so a stale cache is regenerated


def phone_photo(sample: Path, size: tuple[int, int], seed: int) -> Image.Image:
    """A sample cropped to ``size``'s aspect ratio, upscaled with Lanczos, plus noise."""
    rng = np.random.default_rng(seed)
    image = Image.open(sample).convert("RGB")
    width, height = image.size
    aspect = size[0] / size[1]
    crop_w, crop_h = (
        (width, round(width / aspect))
        if width / height < aspect
        else (
            round(height * aspect),
            height,
        )
    )
    crop_w, crop_h = min(crop_w, width), min(crop_h, height)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    image = image.crop((left, top, left + crop_w, top + crop_h))
    image = image.resize(size, Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.normal(0.0, 4.0, size=(*pixels.shape[:2], 1)) + rng.normal(
        0.0, 2.0, size=pixels.shape
    )
    noisy = np.clip(pixels + noise.astype(np.int16), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB")


def alpha_png(size: int = 1200) -> Image.Image:
    """An RGBA PNG: a photo with a soft-edged transparent vignette and a cut-out."""
    photo = Image.open(SAMPLES[0]).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((size // 12, size // 12, size - size // 12, size - size // 12), fill=255)
    draw.rectangle((size // 3, size // 3, size // 2, size // 2), fill=96)
    image = photo.convert("RGBA")
    image.putalpha(mask)
    return image


def animated_gif(frames: int = 8, size: tuple[int, int] = (480, 360)) -> list[Image.Image]:
    """An animation of ``frames`` photographic frames (a pan over a sample)."""
    photo = Image.open(SAMPLES[1]).convert("RGB")
    photo = photo.resize((size[0] * 2, size[1] * 2), Image.Resampling.LANCZOS)
    step = size[0] // frames
    return [
        photo.crop((i * step, i * step // 2, i * step + size[0], i * step // 2 + size[1]))
        for i in range(frames)
    ]


def generate(folder: Path) -> dict[str, Path]:
    """Write every image into ``folder`` (skipping up-to-date files); return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f".version-{_VERSION}"
    names = ["large.jpg", "photo.jpg", "alpha.png", "anim.gif", "tiny.jpg"]
    names += [f"src/{i:02d}.jpg" for i in range(SRCSET_COUNT)]
    paths = {name: folder / name for name in names}
    if stamp.exists() and all(path.exists() for path in paths.values()):
        return paths
    (folder / "src").mkdir(exist_ok=True)
    jpeg = {"quality": 90, "subsampling": 2}
    phone_photo(SAMPLES[0], LARGE_SIZE, 1).save(paths["large.jpg"], "JPEG", **jpeg)
    Image.open(SAMPLES[2]).convert("RGB").resize((640, 427)).save(
        paths["photo.jpg"], "JPEG", quality=90
    )
    alpha_png().save(paths["alpha.png"], "PNG")
    first, *rest = animated_gif()
    first.save(paths["anim.gif"], "GIF", save_all=True, append_images=rest, duration=80, loop=0)
    Image.open(SAMPLES[3]).convert("RGB").resize((64, 48)).save(
        paths["tiny.jpg"], "JPEG", quality=85
    )
    shuffled = random.Random(7)
    for index in range(SRCSET_COUNT):
        sample = SAMPLES[index % len(SAMPLES)]
        size = LARGE_SIZE if shuffled.random() < 0.75 else LARGE_SIZE[::-1]
        phone_photo(sample, size, 100 + index).save(paths[f"src/{index:02d}.jpg"], "JPEG", **jpeg)
    stamp.touch()
    return paths
