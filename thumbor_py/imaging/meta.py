"""Thumbor's ``meta/`` answer and the geometry log it is built from (plus ``debug`` marks)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from thumbor_py.imaging.geometry import Box, FocalPoint


@dataclass(slots=True)
class Operations:
    """The geometry actually applied, in Thumbor's ``meta/`` vocabulary."""

    items: list[dict[str, Any]] = field(default_factory=list)
    focal_points: tuple[FocalPoint, ...] = ()

    def crop(self, box: Box) -> None:
        """Log a crop."""
        self.items.append(
            {
                "type": "crop",
                "left": box.left,
                "top": box.top,
                "right": box.right,
                "bottom": box.bottom,
            }
        )

    def resize(self, size: tuple[float, float]) -> None:
        """Log a resize (Thumbor keeps floats where it computed floats)."""
        self.items.append({"type": "resize", "width": size[0], "height": size[1]})

    def target(self, size: tuple[int, int]) -> tuple[float, float]:
        """The size after every logged operation, starting from ``size``."""
        width: float = size[0]
        height: float = size[1]
        for item in self.items:
            if item["type"] == "crop":
                width, height = item["right"] - item["left"], item["bottom"] - item["top"]
            elif item["type"] == "resize":
                width, height = item["width"], item["height"]
        return width, height


def meta_body(
    source: str,
    frames: int,
    operations: Operations,
    target: tuple[float, float],
    engine_size: tuple[int, int],
) -> bytes:
    """The JSON document; ``engine_size`` is the size after filters, which Thumbor reports
    as the "source" size."""
    body: dict[str, Any] = {
        "thumbor": {
            "source": {
                "url": source,
                "width": engine_size[0],
                "height": engine_size[1],
                "frameCount": frames,
            },
            "operations": operations.items,
            "target": {"width": target[0], "height": target[1]},
        }
    }
    if operations.focal_points:
        body["thumbor"]["focal_points"] = [
            {
                "x": int(point.x),
                "y": int(point.y),
                "z": point.weight,
                "height": point.height,
                "width": point.width,
                "origin": point.origin,
            }
            for point in operations.focal_points
        ]
    return json.dumps(body).encode("utf-8")


def draw_focal_points(image: Image.Image, points: list[FocalPoint]) -> Image.Image:
    """``debug/``: outline each focal point."""
    if not points:
        return image
    image = image.convert("RGB") if image.mode not in ("RGB", "RGBA") else image.copy()
    draw = ImageDraw.Draw(image)
    for point in points:
        width = point.width if point.width > 1 else 10
        height = point.height if point.height > 1 else 10
        left = int(point.x - width / 2)
        top = int(point.y - height / 2)
        draw.rectangle((left, top, left + width, top + height), outline=(255, 255, 0))
    return image
