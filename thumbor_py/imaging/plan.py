"""The immutable values one render passes from stage to stage.

:class:`RenderPlan` is what the request asks for (source, target geometry, focal points),
refined by the stages that decide it (pre-load filters, the decoded header, after-load
filters, smart detection): each returns a new plan. :class:`OutputOptions` is how to encode,
as the URL's option filters (``quality``, ``format``, ...) return it. :class:`Budget` is
what the render may spend: its output pixels and its deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from thumbor_py.errors import DeadlineExceededError, ImageTooLargeError
from thumbor_py.imaging.geometry import FocalPoint, ResizeRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderPlan:
    """The source to load and the geometry to produce; ``oriented_size`` and
    ``source_format`` are known once the source's header is read (0 and "" before)."""

    source: str
    geometry: ResizeRequest
    focal_points: tuple[FocalPoint, ...] = ()
    oriented_size: tuple[int, int] = (0, 0)
    source_format: str = ""

    def requested_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The box the URL asked for, with 0 (or ``orig``) replaced by ``size``'s side."""
        req_w, req_h = self.geometry.width, self.geometry.height
        return (
            req_w if isinstance(req_w, int) and req_w > 0 else size[0],
            req_h if isinstance(req_h, int) and req_h > 0 else size[1],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputOptions:
    """How the result is encoded and cached; option filters return a changed copy."""

    quality: int
    format: str | None = None
    strip_icc: bool = False
    strip_exif: bool = True
    max_age: int | None = None
    max_bytes: int | None = None
    auto_png_to_jpg: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """What one render may spend: ``max_output_pixels`` over all of its ``frames``, and
    time until ``deadline`` (a :func:`time.monotonic` value; None = no deadline)."""

    max_output_pixels: int
    frames: int = 1
    deadline: float | None = None

    def checkpoint(self) -> None:
        """Stop the render (503) when its deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceededError("render stopped at its deadline, retry later")

    def check_canvas(self, size: tuple[int, int], what: str = "output") -> None:
        """Refuse (400) a canvas of ``size`` per frame when all frames would be over the
        output limit; called before allocating it, and again after every filter."""
        total = size[0] * size[1] * self.frames
        if total > self.max_output_pixels:
            raise ImageTooLargeError(
                f"{what} {size[0]}x{size[1]} ({self.frames} frame(s)) is over the "
                f"{self.max_output_pixels}-pixel max_output_pixels limit"
            )

    def for_frames(self, frames: int) -> Budget:
        """The same budget spread over ``frames`` frames."""
        return Budget(
            max_output_pixels=self.max_output_pixels, frames=max(frames, 1), deadline=self.deadline
        )
