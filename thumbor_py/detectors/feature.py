"""Strong corners (Shi-Tomasi, OpenCV's ``goodFeaturesToTrack``) as Thumbor's feature detector."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from thumbor_py.imaging.geometry import FocalPoint
from thumbor_py.plugins import PluginContext

# Thumbor leaves these points with the default origin, "alignment", which meta/ cannot tell
# apart from the halign/valign point; we name them.
ORIGIN = "Feature Detection"


class FeatureDetector:
    """Up to ``max_corners`` corner points, each weighing 1 (Thumbor's parameters)."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``goodFeaturesToTrack`` tuning."""

        max_corners: int = 20
        quality_level: float = 0.04
        min_distance: float = 1.0

    def __init__(self, settings: Settings | None = None, context: PluginContext | None = None):
        self.settings = settings or self.Settings()

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        """The strongest corners of ``image``; none on a flat image."""
        corners = cv2.goodFeaturesToTrack(
            np.asarray(image.convert("L")),
            maxCorners=self.settings.max_corners,
            qualityLevel=self.settings.quality_level,
            minDistance=self.settings.min_distance,
            useHarrisDetector=False,
        )
        if corners is None:
            return []
        return [
            FocalPoint(float(int(x)), float(int(y)), origin=ORIGIN)
            for x, y in corners.reshape(-1, 2).tolist()
        ]
