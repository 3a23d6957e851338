"""The physical limit of the srcset cold pass, measured in-process (CPU time of this thread).

A page asks for each of the 20 sources at 5 widths. The least a server can do is decode each
source once (JPEG drafting to the smallest DCT scale that keeps the widest width) and, per
width, one resize and one encode. ``raw`` is that, written with Pillow alone; ``renderer`` is
thumbor-py's own renderer doing the same (``Renderer.with_master`` once per source, then
``Renderer.render`` per width), i.e. the server minus HTTP, threads and processes.

    .venv/bin/python bench/srcset_limit.py
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from bench import images
from bench.workloads import LANCZOS, SRCSET_WIDTHS

CACHE = Path(__file__).resolve().parent / ".cache"


def raw_ms(folder: Path) -> float:
    """CPU ms per URL: one drafted decode per source, one resize and encode per width."""
    sources = sorted((folder / "src").glob("*.jpg"))
    started = time.thread_time()
    for path in sources:
        image = Image.open(path)
        widest = max(SRCSET_WIDTHS)
        image.draft("RGB", (widest, round(image.size[1] * widest / image.size[0])))
        image.load()
        for width in SRCSET_WIDTHS:
            size = (width, round(image.size[1] * width / image.size[0]))
            out = io.BytesIO()
            resized = image.resize(size, LANCZOS, reducing_gap=3)
            resized.save(out, "JPEG", quality=80, optimize=True, progressive=True)
    return 1000 * (time.thread_time() - started) / (len(sources) * len(SRCSET_WIDTHS))


def renderer_ms(folder: Path) -> float:
    """CPU ms per URL with thumbor-py's renderer: one master per source, then each width."""
    from thumbor_py import url
    from thumbor_py.assembly import build_renderer
    from thumbor_py.config import Config
    from thumbor_py.imaging.master import PixelSource

    config = Config.from_mapping({"security": {"allow_unsafe": True}})
    renderer = build_renderer(config.imaging, detectors=[])
    sources = sorted((folder / "src").glob("*.jpg"))
    started = time.thread_time()
    for path in sources:
        source = PixelSource(path.name, path.read_bytes())
        source = renderer.with_master(source)
        for width in SRCSET_WIDTHS:
            request = url.parse(f"/unsafe/{width}x0/src/{path.name}")
            renderer.render(source, request, "default")
    return 1000 * (time.thread_time() - started) / (len(sources) * len(SRCSET_WIDTHS))


def main() -> None:
    folder = CACHE / "images"
    images.generate(folder)
    print(
        f"srcset limit, CPU per URL: raw Pillow {raw_ms(folder):.1f} ms, "
        f"thumbor-py renderer {renderer_ms(folder):.1f} ms"
    )


if __name__ == "__main__":
    main()
