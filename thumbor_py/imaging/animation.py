"""Animated sources (GIF, WebP, APNG, AVIF): every frame decoded upright, with its duration
and the loop count, so crop, resize, flip and every filter can run on each frame."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from thumbor_py.errors import ImageDecodeError
from thumbor_py.imaging.formats import Opened
from thumbor_py.imaging.pixels import has_alpha

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
DEFAULT_DURATION = 100


@dataclass(frozen=True, slots=True)
class Animation:
    """Decoded frames (RGB, or RGBA when any frame is transparent) and their timing."""

    frames: list[Image.Image]
    durations: tuple[int, ...]
    loop: int | None


def read_frames(opened: Opened, checkpoint: Callable[[], None] = lambda: None) -> Animation:
    """Decode every frame, composited as the source's disposal rules say (Pillow does);
    ``checkpoint`` runs before each (it raises to stop at the render's deadline)."""
    image = opened.image
    frames: list[Image.Image] = []
    durations: list[int] = []
    try:
        for index in range(opened.frames):
            checkpoint()
            image.seek(index)
            frame = image.convert("RGBA") if has_alpha(image) else image.convert("RGB")
            transpose = _TRANSPOSE.get(opened.orientation)
            frames.append(frame.transpose(transpose) if transpose is not None else frame)
            durations.append(_duration(image.info.get("duration")))
        image.seek(0)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError("an animation frame is truncated or corrupt") from exc
    if any(frame.mode == "RGBA" for frame in frames):
        frames = [frame.convert("RGBA") for frame in frames]
    loop = image.info.get("loop")
    return Animation(frames, tuple(durations), loop if isinstance(loop, int) else None)


def _duration(value: object) -> int:
    if isinstance(value, int | float) and value > 0:
        return int(value)
    return DEFAULT_DURATION
