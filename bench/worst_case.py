"""The cost of the worst requests one render may take at the default limits.

Each case renders once in a fresh child process (``Renderer.render``, as a worker thread
would) and reports that process's CPU seconds (user + system, ``resource.getrusage``), the
render's wall time, and its peak RSS (``ru_maxrss``) and growth over an idle child; CPU and
RSS do not depend much on other load on the machine, wall time does. With ``--deadline``,
each render gets that many seconds (as ``server.request_timeout`` gives a request), and
"late s" is the CPU its thread spent after the deadline (its own CPU clock, read when the
deadline passed, against ``time.thread_time()`` when the render returned). Sources
are generated once into a temporary directory (an 8600x8600 JPEG: 74 MP, under max_pixels).

    .venv/bin/python -m bench.worst_case [--deadline SECONDS] [case ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import threading
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
    "convolution5x5-40mp": (
        f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:convolution({';'.join(['1'] * 25)},5)/",
        "big.jpg",
    ),
    "grown-canvas-40mp": (
        f"fit-in/{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:upscale():fill(blur):"
        "round_corner(3000,0,0,0):saturation(2):noise(40)/",
        "small.png",
    ),
    "watermark-74mp": (
        f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:watermark(big.jpg,0,0,50)/",
        "big.jpg",
    ),
    "watermark-40mp": (
        f"{OUTPUT_SIDE}x{OUTPUT_SIDE}/filters:watermark(mark.jpg,0,0,50)/",
        "big.jpg",
    ),
    "debug-74mp": ("debug/100x100/", "big.jpg"),
    "trim-tolerance-74mp": (f"trim:top-left:10/{OUTPUT_SIDE}x{OUTPUT_SIDE}/", "big.jpg"),
    "fill-anim-over-budget": ("fit-in/2000x2000/filters:fill(red)/", "anim.gif"),
    # 300 frames (max_frames) of 500x500: 75 MP decoded (max_pixels), 39 MP out.
    "anim-300-frames": ("360x360/filters:blur(5):sharpen(2,1,false)/", "anim300.gif"),
}


def _sources(root: Path) -> None:
    if not (root / "big.jpg").exists():
        image = Image.effect_noise((SOURCE_SIDE, SOURCE_SIDE), 40).convert("RGB")
        image.save(root / "big.jpg", "JPEG", quality=85)
    if not (root / "mark.jpg").exists():
        mark = Image.effect_noise((OUTPUT_SIDE, OUTPUT_SIDE), 40).convert("RGB")
        mark.save(root / "mark.jpg", "JPEG", quality=85)
    Image.new("RGB", (16, 16), "red").save(root / "small.png")
    frames = [Image.new("RGB", (20, 20), (i * 12, 80, 160)) for i in range(20)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    if not (root / "anim300.gif").exists():
        base = Image.radial_gradient("L").resize((500, 500)).convert("P")
        many = [base.point(lambda v, i=i: (v + i) % 256) for i in range(300)]
        many[0].save(root / "anim300.gif", save_all=True, append_images=many[1:])


Result = tuple[str, float, float, float, float]


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
    until = None if deadline is None else started + deadline
    done: dict[str, object] = {}

    def render() -> None:
        try:
            names = [name for name in ("big.jpg", "mark.jpg") if f"({name}" in options]
            resources = {name: (Path(path).parent / name).read_bytes() for name in names}
            rendered = renderer.render(data, request, resources=resources, deadline=until)
            done["outcome"] = f"200 {rendered.width}x{rendered.height}"
        except HttpError as exc:
            done["outcome"] = f"{exc.status} {exc.reason}"
        done["cpu"] = time.thread_time()

    thread = threading.Thread(target=render)
    thread.start()
    # The render thread's own CPU clock, read when its deadline passes: what it spends after.
    clock = time.pthread_getcpuclockid(thread.ident or 0)
    at_deadline = None
    if until is not None:
        thread.join(max(until - time.monotonic(), 0))
        at_deadline = time.clock_gettime(clock) if thread.is_alive() else None
    thread.join()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    late = 0.0 if at_deadline is None else float(done["cpu"]) - at_deadline  # type: ignore[arg-type]
    queue.put((str(done["outcome"])[:40], cpu, wall, late, after.ru_maxrss / 1024))


def measure(root: Path, name: str, deadline: float | None) -> Result:
    options, source = CASES[name]
    spawn = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = spawn.Queue()  # type: ignore[type-arg]
    process = spawn.Process(target=_child, args=(str(root / source), options, deadline, queue))
    process.start()
    result: Result = queue.get()
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
    *_, idle_rss = measure(root, "idle", None)
    head = f"{'cpu s':>6} {'wall s':>6} {'late s':>6} {'RSS MiB':>8} {'+idle':>6}"
    print(f"{'case':22} {'outcome':40} {head}")
    for name in args.cases:
        outcome, cpu, wall, late, rss = measure(root, name, args.deadline)
        row = f"{cpu:6.2f} {wall:6.2f} {late:6.2f} {rss:8.0f} {rss - idle_rss:6.0f}"
        print(f"{name:22} {outcome:40} {row}")


if __name__ == "__main__":
    main()
