"""The cost of the worst requests one render may take at the default limits.

Each case renders once in a fresh child process (``Renderer.render``, as a worker thread
would) and reports that process's CPU seconds (user + system, ``resource.getrusage``) and
peak RSS growth over an idle child (``ru_maxrss``), so other load on the machine does not
change the numbers much. Sources are generated once into a temporary directory.

    .venv/bin/python -m bench.worst_case [--deadline SECONDS] [case ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from PIL import Image

# The largest square JPEG under max_pixels (75 MP) and the largest output (40 MP).
SOURCE_SIDE = 8600
OUTPUT_SIDE = 6300
_HEAVY = ":".join(["sharpen(2,1,false)"] * 20)
CASES = {
    "idle": ("", "small.png"),
    "resize-40mp": (f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/", "big.jpg"),
    "blur150-40mp": (f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:blur(150)/", "big.jpg"),
    "sharpen-40mp": (f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:sharpen(2,1,false)/", "big.jpg"),
    "20-sharpen-40mp": (f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:{_HEAVY}/", "big.jpg"),
    "fill-anim-over-budget": ("fit-in/2000x2000/filters:fill(red)/", "anim.gif"),
}


def _sources(root: Path) -> None:
    if not (root / "big.jpg").exists():
        image = Image.effect_noise((SOURCE_SIDE, SOURCE_SIDE), 40).convert("RGB")
        image.save(root / "big.jpg", "JPEG", quality=85)
    Image.new("RGB", (16, 16), "red").save(root / "small.png")
    frames = [Image.new("RGB", (20, 20), (i * 12, 80, 160)) for i in range(20)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])


def _child(path: str, options: str, deadline: float | None, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from thumbor_py.config import ImagingConfig
    from thumbor_py.errors import HttpError
    from thumbor_py.imaging.filters import build_registry
    from thumbor_py.imaging.transform import Renderer
    from thumbor_py.url import parse

    renderer = Renderer(ImagingConfig(detectors=(), master_cache_bytes=0), build_registry())
    data = Path(path).read_bytes()
    request = parse(f"/unsafe/{options}{Path(path).name}")
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    try:
        rendered = renderer.render(
            data, request, deadline=None if deadline is None else started + deadline
        )
        outcome = f"200 {rendered.width}x{rendered.height}"
    except HttpError as exc:
        outcome = f"{exc.status} {exc.reason[:60]}"
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    queue.put((outcome, cpu, after.ru_maxrss / 1024))


def measure(root: Path, name: str, deadline: float | None) -> tuple[str, float, float]:
    options, source = CASES[name]
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    process = multiprocessing.get_context("spawn").Process(
        target=_child, args=(str(root / source), options, deadline, queue)
    )
    process.start()
    result: tuple[str, float, float] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deadline", type=float, default=None)
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    root = Path(tempfile.gettempdir()) / "thumbor-py-worst-case"
    root.mkdir(exist_ok=True)
    _sources(root)
    _, _, idle_rss = measure(root, "idle", None)
    print(f"{'case':24} {'outcome':40} {'cpu s':>7} {'peak RSS MiB':>13} {'over idle':>10}")
    for name in args.cases:
        outcome, cpu, rss = measure(root, name, args.deadline)
        print(f"{name:24} {outcome:40} {cpu:7.2f} {rss:13.0f} {rss - idle_rss:10.0f}")


if __name__ == "__main__":
    main()
