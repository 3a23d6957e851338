"""An example ``smart`` detector plugin: the brightest patch of the image is its subject.

Configure it by ``module:Class`` (with this folder on ``PYTHONPATH``)::

    imaging:
      detectors: [face, "brightest_detector:BrightestDetector", feature]

A detector is any class with a frozen ``Settings`` dataclass, a constructor taking
``(settings, context)`` and a synchronous ``detect(image) -> list[FocalPoint]``; no base class.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageStat

from thumbor_py.imaging.geometry import FocalPoint
from thumbor_py.plugins import PluginContext


class BrightestDetector:
    """One focal point on the brightest cell of a ``grid`` x ``grid`` split of the image."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """How finely to split the image, and the mean brightness (0-255) worth reporting."""

        grid: int = 8
        threshold: float = 200.0

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self._settings = settings

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        """The centre of the brightest cell, weighted by its area; none on a dull image."""
        gray = image.convert("L")
        grid = self._settings.grid
        cell_w, cell_h = max(gray.width // grid, 1), max(gray.height // grid, 1)
        best, best_box = -1.0, (0, 0, cell_w, cell_h)
        for top in range(0, gray.height - cell_h + 1, cell_h):
            for left in range(0, gray.width - cell_w + 1, cell_w):
                box = (left, top, left + cell_w, top + cell_h)
                mean = ImageStat.Stat(gray.crop(box)).mean[0]
                if mean > best:
                    best, best_box = mean, box
        if best < self._settings.threshold:
            return []
        left, top, _, _ = best_box
        return [
            FocalPoint(
                float(left + cell_w // 2),
                float(top + cell_h // 2),
                weight=float(cell_w * cell_h),
                width=cell_w,
                height=cell_h,
                origin="Brightest Detection",
            )
        ]
