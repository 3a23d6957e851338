"""The workloads: the URLs each one requests, and the same operation done by Pillow alone.

The raw-Pillow versions are what a careful programmer would write by hand for that one URL
(JPEG draft, one resize with ``reducing_gap``, the same encoder settings as Thumbor's
defaults); they are the floor the servers are compared with. Each takes the source file and
how many pixels :meth:`Workload.distinct` grew the URL's size by, so the floor is measured
over the same output sizes the servers render.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFilter

from bench.images import SRCSET_COUNT

LANCZOS = Image.Resampling.LANCZOS
SRCSET_WIDTHS = (320, 640, 960, 1280, 1920)
RawOp = Callable[[Path, int], bytes]  # (source, pixels grown): the encoded output


@dataclass(frozen=True)
class Workload:
    """A named list of paths (requested in order, round-robin) and its raw-Pillow twin."""

    name: str
    paths: tuple[str, ...]
    raw: RawOp | None
    note: str = ""
    result_storage: bool = False

    def variants(self, count: int = 32) -> tuple[str, ...]:
        """The paths with a ``max_age(N)`` filter added, N varying: every request a different
        URL (so nothing is coalesced or served from a cache of results) for the same pixel
        work (``max_age`` only changes the Cache-Control header)."""
        if self.name.startswith("srcset"):
            return self.paths
        out = []
        for index in range(count):
            for path in self.paths:
                head, _, name = path.rpartition("/")
                if "/filters:" in path:
                    out.append(f"{head}:max_age({86400 + index})/{name}")
                else:
                    out.append(f"{head}/filters:max_age({86400 + index})/{name}")
        return tuple(out)

    def distinct(self, count: int = 64) -> tuple[str, ...]:
        """The paths with the first non-zero dimension grown by 0..count-1 pixels: every
        request a different URL and a different output size, as a real page's would be."""
        if self.name.startswith("srcset") or self.result_storage:
            return self.paths
        out = []
        for index in range(count):
            for path in self.paths:
                out.append(_grow(path, index))
        return tuple(out)


def _grow(path: str, extra: int) -> str:
    parts = path.split("/")
    for position, part in enumerate(parts):
        width, x, height = part.partition("x")
        if x and width.isdigit() and height.isdigit():
            if int(width):
                parts[position] = f"{int(width) + extra}x{height}"
            else:
                parts[position] = f"{width}x{int(height) + extra}"
            return "/".join(parts)
    raise ValueError(f"no size in {path}")


def grown(size: tuple[int, int], extra: int) -> tuple[int, int]:
    """``size`` with its first non-zero dimension grown by ``extra``, as :func:`_grow` does
    to a URL."""
    return (size[0] + extra, size[1]) if size[0] else (size[0], size[1] + extra)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, optimize=True, progressive=True)
    return out.getvalue()


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre-crop to the aspect of ``size`` and resize, in one pass."""
    width, height = image.size
    scale = max(size[0] / width, size[1] / height)
    box_w, box_h = size[0] / scale, size[1] / scale
    left, top = max((width - box_w) / 2, 0.0), max((height - box_h) / 2, 0.0)  # no -1e-14
    return image.resize(size, LANCZOS, box=(left, top, left + box_w, top + box_h), reducing_gap=3)


def _opened(path: Path, size: tuple[int, int] | None = None) -> Image.Image:
    image = Image.open(path)
    if size is not None and image.format == "JPEG":
        image.draft("RGB", size)
    return image


def crop_jpeg(base: tuple[int, int]) -> RawOp:
    def run(path: Path, extra: int) -> bytes:
        size = grown(base, extra)
        image = _opened(path)
        scale = max(size[0] / image.size[0], size[1] / image.size[1])
        need = (round(image.size[0] * scale), round(image.size[1] * scale))
        image.draft("RGB", need)
        return _jpeg(_cover(image, size))

    return run


def fit_jpeg(base: tuple[int, int]) -> RawOp:
    def run(path: Path, extra: int) -> bytes:
        box = grown(base, extra)
        image = _opened(path)
        scale = min(box[0] / image.size[0], box[1] / image.size[1])
        size = (round(image.size[0] * scale), round(image.size[1] * scale))
        image.draft("RGB", size)
        return _jpeg(image.resize(size, LANCZOS, reducing_gap=3))

    return run


def webp_500(path: Path, extra: int) -> bytes:
    image = _opened(path)
    width = 500 + extra
    size = (width, round(image.size[1] * width / image.size[0]))
    image.draft("RGB", size)
    out = io.BytesIO()
    image.resize(size, LANCZOS, reducing_gap=3).save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


def blur_200(path: Path, extra: int) -> bytes:
    image = _cover(Image.open(path), grown((200, 200), extra))
    return _jpeg(image.filter(ImageFilter.GaussianBlur(3)))


def gif_100(path: Path, extra: int) -> bytes:
    size = grown((100, 100), extra)
    image = Image.open(path)
    frames = []
    for index in range(image.n_frames):
        image.seek(index)
        frame = _cover(image.convert("RGB"), size)
        frames.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE))
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return out.getvalue()


def fill_png(path: Path, extra: int) -> bytes:
    box = grown((400, 400), extra)
    image = Image.open(path)
    scale = min(box[0] / image.size[0], box[1] / image.size[1])
    size = (round(image.size[0] * scale), round(image.size[1] * scale))
    resized = image.resize(size, LANCZOS, reducing_gap=3)
    canvas = Image.new("RGBA", box, (255, 255, 255, 255))
    canvas.paste(resized, ((box[0] - size[0]) // 2, (box[1] - size[1]) // 2))
    out = io.BytesIO()
    canvas.save(out, "PNG", compress_level=6)
    return out.getvalue()


def srcset_paths(seed: int = 1) -> tuple[str, ...]:
    """Every srcset source at every width, shuffled (the same order for every server)."""
    paths = [f"/unsafe/{w}x0/src/{i:02d}.jpg" for i in range(SRCSET_COUNT) for w in SRCSET_WIDTHS]
    random.Random(seed).shuffle(paths)
    return tuple(paths)


def workloads() -> list[Workload]:
    """Every workload, in the order the benchmark runs them."""

    def one(path: str, raw: RawOp | None, note: str = "") -> Workload:
        return Workload(path, (f"/unsafe/{path}",), raw, note)

    return [
        one("300x200/large.jpg", crop_jpeg((300, 200)), "12 MP crop"),
        one("100x100/anim.gif", gif_100, "8 frames"),
        one("200x200/filters:blur(3)/photo.jpg", blur_200),
        one("10x10/tiny.jpg", crop_jpeg((10, 10)), "the issue's small image"),
        one("100x100/tiny.jpg", crop_jpeg((100, 100)), "upscaled"),
        one("fit-in/800x600/large.jpg", fit_jpeg((800, 600))),
        one("500x0/filters:format(webp):quality(80)/large.jpg", webp_500),
        one("300x300/smart/photo.jpg", crop_jpeg((300, 300)), "detectors off"),
        one("fit-in/400x400/filters:fill(white)/alpha.png", fill_png),
        Workload("srcset (20 x 5 widths)", srcset_paths(), None, "result storage off"),
        Workload(
            "result-storage hit", ("/unsafe/300x200/large.jpg",), None, "file", result_storage=True
        ),
    ]
