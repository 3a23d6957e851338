"""Frontal faces, found by the Haar cascade that ships inside ``opencv-python-headless``."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from thumbor_py.imaging.geometry import Box, FocalPoint
from thumbor_py.plugins import PluginContext

ORIGIN = "Face Detection"
# Thumbor moves a face's focal point up by 12% of its height, towards the forehead and hair,
# unless that would leave the image.
HAIR_OFFSET = 0.12


def face_point(left: int, top: int, width: int, height: int) -> FocalPoint:
    """The focal point of a face box, weighted by its area and nudged up as Thumbor does."""
    lift = height * HAIR_OFFSET
    if top - lift < 0:
        lift = 0.0
    return FocalPoint(
        float(left + width // 2),
        float(int(top - lift + height // 2)),
        weight=float(width * height),
        width=width,
        height=height,
        origin=ORIGIN,
        region=Box(left, top, left + width, top + height),
    )


def min_face_side(size: tuple[int, int]) -> int:
    """Thumbor's smallest face: 1/15 of the shorter side, never under the 20-pixel window."""
    return max(20, min(size) // 15)


class FaceDetector:
    """Frontal faces (Thumbor's default cascade and parameters), each weighted by its area."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """A cascade file (a name in ``cv2.data.haarcascades`` or a path) and its tuning."""

        cascade: str = "haarcascade_frontalface_alt.xml"
        scale_factor: float = 1.2
        min_neighbors: int = 4

    def __init__(self, settings: Settings | None = None, context: PluginContext | None = None):
        self.settings = settings or self.Settings()
        cascade = Path(self.settings.cascade)
        if not cascade.is_absolute():
            cascade = Path(cv2.data.haarcascades) / cascade  # type: ignore[attr-defined]
        self._cascade = str(cascade)
        # A CascadeClassifier keeps per-call buffers: one per render thread, loaded (~7 ms)
        # on that thread's first detection rather than at start-up.
        self._local = threading.local()

    def _classifier(self) -> cv2.CascadeClassifier:
        classifier: cv2.CascadeClassifier | None = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = cv2.CascadeClassifier(self._cascade)
            if classifier.empty():
                raise OSError(f"cannot load the Haar cascade {self._cascade}")
            self._local.classifier = classifier
        return classifier

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        """One focal point per frontal face in ``image``."""
        gray = np.asarray(image.convert("L"))
        side = min_face_side(image.size)
        faces = self._classifier().detectMultiScale(
            gray,
            scaleFactor=self.settings.scale_factor,
            minNeighbors=self.settings.min_neighbors,
            minSize=(side, side),
        )
        return [face_point(int(x), int(y), int(w), int(h)) for x, y, w, h in faces]
