"""One render, synchronously: decode, orient, trim, crop, resize, flip, filter, encode.

Runs in a worker thread, never on the event loop. Geometry comes from the pure functions in
:mod:`thumbor_py.imaging.geometry`; pixels are only touched once the whole plan is known,
which lets JPEG sources be decoded at a reduced DCT scale and the crop and resize be done by
one resampling pass.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageMath

from thumbor_py.config import ImagingConfig
from thumbor_py.errors import ImageTooLargeError
from thumbor_py.imaging import filters as flt
from thumbor_py.imaging import formats, geometry
from thumbor_py.imaging.geometry import Box, FocalPoint, ResizeRequest
from thumbor_py.url import Crop, ImageRequest, Trim

RESAMPLE = Image.Resampling.LANCZOS
# Pillow reduces by an integer factor before the final Lanczos pass when the ratio allows
# it; 3.0 keeps the result indistinguishable from a full Lanczos resize.
REDUCING_GAP = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """A finished response body and what the HTTP layer needs to know about it."""

    data: bytes
    content_type: str
    width: int
    height: int
    max_age: int | None = None


@dataclass(slots=True)
class _Operations:
    """The geometry actually applied, in Thumbor's ``meta/`` vocabulary."""

    items: list[dict[str, Any]] = field(default_factory=list)
    focal_points: tuple[FocalPoint, ...] = ()

    def crop(self, box: Box) -> None:
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
        self.items.append({"type": "resize", "width": size[0], "height": size[1]})


class Renderer:
    """Renders requests under one imaging configuration and filter registry."""

    def __init__(
        self,
        config: ImagingConfig,
        registry: Mapping[str, flt.FilterSpec],
        *,
        strict_filters: bool = False,
    ) -> None:
        self._config = config
        self._registry = registry
        self._allowed = frozenset(config.filters) if config.filters is not None else None
        self._strict = strict_filters

    def check_request(self, request: ImageRequest) -> None:
        """Refuse requests whose canvas alone is over the output limit, before any I/O."""
        width, height = request.width, request.height
        if isinstance(width, int) and isinstance(height, int):
            self._check_output((width, height))

    def _check_output(self, size: tuple[int, int]) -> None:
        limit = self._config.max_output_pixels
        if size[0] * size[1] > limit:
            raise ImageTooLargeError(
                f"requested output {size[0]}x{size[1]} is over the {limit}-pixel limit"
            )

    def render(self, data: bytes, request: ImageRequest, format_class: str = "default") -> Rendered:
        """Render ``request`` from the source bytes ``data``.

        ``format_class`` comes from :mod:`thumbor_py.negotiation`: ``default`` keeps the
        source's format (or the URL's ``format()``); ``webp``/``avif``/``jpeg`` are what the
        client's ``Accept`` allowed and the configuration asked for.
        """
        config = self._config
        bound = flt.bind(
            request.filters, registry=self._registry, allowed=self._allowed, strict=self._strict
        )
        state = flt.RenderState(
            image=None,
            geometry=_geometry(request, config),
            source_format="",
            quality=config.quality,
            strip_exif=not config.preserve_exif,
        )
        flt.run_phase(bound, "pre_load", state)
        opened = formats.open_image(
            data, max_pixels=config.max_pixels, respect_orientation=config.respect_orientation
        )
        state.source_format = opened.format
        state.oriented_size = opened.oriented_size
        flt.run_phase(bound, "after_load", state)
        self._check_output(geometry.output_size(state.geometry, opened.oriented_size))
        operations = _Operations()
        image: Image.Image | None = None
        if request.trim is not None or not request.meta:
            image, layout = _decode_and_crop(request, opened, state, operations, config)
        else:
            layout = _layout(request, state, opened.oriented_size, config)
        _record(layout, request, operations)
        if request.meta:
            return _meta_response(request, opened, state, operations, layout.work_size)
        assert image is not None
        state.image = _finish(image, layout, request, state)
        flt.run_phase(bound, "post_transform", state)
        return _encode(state, opened, format_class)


def _geometry(request: ImageRequest, config: ImagingConfig) -> ResizeRequest:
    return ResizeRequest(
        width=geometry.clamp_to_max(request.width, config.max_width),
        height=geometry.clamp_to_max(request.height, config.max_height),
        fit_in=request.fit_in,
        adaptive=request.adaptive,
        full=request.full,
        halign=request.halign,
        valign=request.valign,
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the geometry happens, in "work" pixels: the upright source after Thumbor's
    max-size normalisation and trim. The decoded image may be smaller (JPEG draft) or larger
    (not yet normalised); ``scale`` maps work pixels onto it."""

    work_size: tuple[int, int]
    manual: Box | None
    plan: geometry.Plan
    scale: tuple[float, float] = (1.0, 1.0)


def _layout(
    request: ImageRequest,
    state: flt.RenderState,
    size: tuple[int, int],
    config: ImagingConfig,
    trimmed_crop: Crop | None = None,
    *,
    trimmed: bool = False,
) -> _Layout:
    """The crops and resize for an upright image of ``size``.

    After a trim, ``size`` is the trimmed image and ``trimmed_crop`` the URL's crop already
    moved into its coordinates; the max-size normalisation happened before the trim.
    """
    normalized = None
    if not trimmed:
        normalized = geometry.normalize_size(size, config.max_width, config.max_height)
    work_size = normalized or size
    crop = trimmed_crop if trimmed else request.crop
    if normalized and crop is not None:
        crop = geometry.scale_crop(crop, work_size[0] / size[0])
    manual = geometry.manual_crop_box(crop, work_size)
    plan = geometry.plan(state.geometry, manual.size if manual else work_size, state.focal_points)
    return _Layout(work_size, manual, plan)


def _decode_and_crop(
    request: ImageRequest,
    opened: formats.Opened,
    state: flt.RenderState,
    operations: _Operations,
    config: ImagingConfig,
) -> tuple[Image.Image, _Layout]:
    """Decode (drafting JPEGs when the output is smaller) and trim; return the layout."""
    size = opened.oriented_size
    layout = _layout(request, state, size, config)
    if request.trim is None:
        draft = None if request.debug else _draft_size(size, layout)
        image = formats.load_pixels(opened, draft)
    else:
        image = formats.load_pixels(opened, None)
        if layout.work_size != size:
            image = image.resize(layout.work_size, RESAMPLE)
        crop = request.crop
        if crop is not None and layout.work_size != size:
            crop = geometry.scale_crop(crop, layout.work_size[0] / size[0])
        image, crop = _trim(image, request.trim, crop, operations)
        layout = _layout(request, state, image.size, config, crop, trimmed=True)
    scale = (image.size[0] / layout.work_size[0], image.size[1] / layout.work_size[1])
    return image, dataclasses.replace(layout, scale=scale)


def _draft_size(size: tuple[int, int], layout: _Layout) -> tuple[int, int] | None:
    """The smallest decoded size that still holds every output pixel, or None for full size."""
    plan = layout.plan
    if plan.resize is None:
        return None
    region = plan.auto_crop or layout.manual
    region_size = region.size if region else layout.work_size
    ratio = max(plan.resize[0] / region_size[0], plan.resize[1] / region_size[1])
    ratio *= layout.work_size[0] / size[0]
    if ratio >= 0.5:
        return None
    return math.ceil(size[0] * ratio), math.ceil(size[1] * ratio)


def _record(layout: _Layout, request: ImageRequest, operations: _Operations) -> None:
    """Log the geometry in Thumbor's ``meta/`` vocabulary (debug only crops manually)."""
    operations.focal_points = layout.plan.focal_points
    if layout.manual is not None:
        operations.crop(layout.manual)
    if request.debug:
        return
    if layout.plan.auto_crop is not None:
        operations.crop(layout.plan.auto_crop)
    if layout.plan.reported_resize is not None:
        operations.resize(layout.plan.reported_resize)
    if request.flip_horizontal:
        operations.items.append({"type": "flip_horizontally"})
    if request.flip_vertical:
        operations.items.append({"type": "flip_vertically"})


def _finish(
    image: Image.Image, layout: _Layout, request: ImageRequest, state: flt.RenderState
) -> Image.Image:
    """Crop and resize in one resampling pass, then flip (debug only draws focal points)."""
    scale = layout.scale
    if request.debug:
        if layout.manual is not None:
            image = image.crop(_scaled(layout.manual, scale))
        return _draw_focal_points(image, state.focal_points)
    box = _combine(layout.manual, layout.plan.auto_crop)
    resize = layout.plan.resize
    if resize is None and scale != (1.0, 1.0):
        resize = box.size if box else layout.work_size
    if resize is not None:
        full = Box(0, 0, *layout.work_size)
        image = _resize(image, resize, _scaled_float(box or full, scale))
    elif box is not None:
        image = image.crop(_scaled(box, scale))
    if request.flip_horizontal:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if request.flip_vertical:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def _combine(manual: Box | None, auto: Box | None) -> Box | None:
    if auto is None:
        return manual
    if manual is None:
        return auto
    return Box(
        manual.left + auto.left,
        manual.top + auto.top,
        manual.left + auto.right,
        manual.top + auto.bottom,
    )


def _scaled(box: Box, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    left, top, right, bottom = _scaled_float(box, scale)
    return round(left), round(top), round(right), round(bottom)


def _scaled_float(box: Box, scale: tuple[float, float]) -> tuple[float, float, float, float]:
    return box.left * scale[0], box.top * scale[1], box.right * scale[0], box.bottom * scale[1]


def _resize(
    image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> Image.Image:
    if image.mode in ("1", "P"):
        # Palette images resample only with NEAREST; go to true colour first, as Thumbor does.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in ("RGB", "RGBA", "L", "LA", "I", "F", "RGBX", "CMYK", "I;16"):
        image = image.convert("RGBA")
    if image.size == size and box == (0.0, 0.0, float(size[0]), float(size[1])):
        return image
    return image.resize(size, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)


def _trim(
    image: Image.Image, trim: Trim, crop: Crop | None, operations: _Operations
) -> tuple[Image.Image, Crop | None]:
    """Cut away the border coloured like the chosen corner, within the tolerance."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    corner = (0, 0) if trim.corner == "top-left" else (width - 1, height - 1)
    reference = Image.new("RGB", rgb.size, rgb.getpixel(corner))  # type: ignore[arg-type]
    diff = ImageChops.difference(rgb, reference)
    if trim.tolerance:
        red, green, blue = (channel.convert("I") for channel in diff.split())
        limit = trim.tolerance * trim.tolerance
        mask = ImageMath.lambda_eval(
            lambda a: ((a["r"] * a["r"] + a["g"] * a["g"] + a["b"] * a["b"]) > limit) * 255,
            r=red,
            g=green,
            b=blue,
        )
        bbox = mask.convert("L").getbbox()
    else:
        bbox = diff.getbbox()
    if bbox is None:
        return image, crop
    box = Box(*bbox)
    operations.crop(box)
    if crop is not None:
        crop = Crop(
            crop.left - box.left, crop.top - box.top, crop.right - box.left, crop.bottom - box.top
        )
    return image.crop(bbox), crop


def _draw_focal_points(image: Image.Image, points: list[FocalPoint]) -> Image.Image:
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


def _encode(state: flt.RenderState, opened: formats.Opened, format_class: str) -> Rendered:
    image = state.pixels
    negotiated = formats.FORMAT_NAMES.get(format_class)
    fmt = state.format or negotiated or formats.default_output_format(opened.format, image)
    icc = None if state.strip_icc else opened.image.info.get("icc_profile")
    exif = None
    if not state.strip_exif:
        exif_data = opened.image.getexif()
        exif_data.pop(0x0112, None)  # pixels are already upright
        exif = exif_data.tobytes() if exif_data else None
    options = formats.EncodeOptions(format=fmt, quality=state.quality, icc_profile=icc, exif=exif)
    data = formats.encode(image, options)
    return Rendered(
        data=data,
        content_type=formats.CONTENT_TYPES[fmt],
        width=image.size[0],
        height=image.size[1],
        max_age=state.max_age,
    )


def _meta_response(
    request: ImageRequest,
    opened: formats.Opened,
    state: flt.RenderState,
    operations: _Operations,
    work_size: tuple[int, int],
) -> Rendered:
    """Thumbor's ``meta/`` JSON, from the recorded operations."""
    target = _target_of(work_size, operations)
    body: dict[str, Any] = {
        "thumbor": {
            # Thumbor reports the final size as the "source" size; so do we.
            "source": {
                "url": request.source,
                "width": int(target[0]),
                "height": int(target[1]),
                "frameCount": opened.frames,
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
    data = json.dumps(body).encode("utf-8")
    return Rendered(
        data=data, content_type="application/json", width=0, height=0, max_age=state.max_age
    )


def _target_of(size: tuple[int, int], operations: _Operations) -> tuple[float, float]:
    width: float = size[0]
    height: float = size[1]
    for item in operations.items:
        if item["type"] == "crop":
            width, height = item["right"] - item["left"], item["bottom"] - item["top"]
        elif item["type"] == "resize":
            width, height = item["width"], item["height"]
    return width, height
