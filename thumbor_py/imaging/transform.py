"""One render, synchronously: decode, orient, trim, crop, resize, flip, filter, encode.

Runs in a worker thread, never on the event loop. Geometry comes from the pure functions in
:mod:`thumbor_py.imaging.geometry`; pixels are only touched once the whole plan is known,
which lets JPEG sources be decoded at a reduced DCT scale and the crop and resize be done by
one resampling pass. Animations go through the same steps frame by frame.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.errors import ImageTooLargeError
from thumbor_py.imaging import animation, formats, geometry, meta, output, trim
from thumbor_py.imaging import filters as flt
from thumbor_py.imaging.choice import OutputChoice, output_format
from thumbor_py.imaging.detection import SmartDetection, detection_size
from thumbor_py.imaging.layout import (
    RESAMPLE,
    Layout,
    draft_size,
    finish,
    layout_for,
    point_mapper,
    record,
    refocus,
    resize_request,
)
from thumbor_py.imaging.master import PixelLoader, PixelSource, decode_master
from thumbor_py.imaging.output import Rendered
from thumbor_py.url import Crop, ImageRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sources:
    """What to load before rendering: the image (``extract_focal()`` may change it) and
    the images filter arguments name (``watermark``, ``frame``), loaded by the same loader."""

    image: str
    resources: tuple[str, ...] = ()


class Renderer:
    """Renders requests under one imaging configuration, filter registry and detector chain.

    Everything is built before (by :mod:`thumbor_py.assembly`) and handed in: ``registry``
    holds the built-in filters and the filter plugins, ``detection`` the smart-crop chain
    (None: ``smart`` falls back to halign/valign).
    """

    def __init__(
        self,
        config: ImagingConfig,
        registry: Mapping[str, flt.FilterSpec],
        *,
        detection: SmartDetection | None = None,
        strict_filters: bool | None = None,
    ) -> None:
        self._config = config
        self._registry = dict(registry)
        self._allowed = frozenset(config.filters) if config.filters is not None else None
        self._strict = config.strict_filters if strict_filters is None else strict_filters
        self._detection = detection if detection is not None and detection.enabled else None

    def _bind(self, request: ImageRequest) -> tuple[flt.BoundFilter, ...]:
        return flt.bind(
            request.filters, registry=self._registry, allowed=self._allowed, strict=self._strict
        )

    def _state(
        self, request: ImageRequest, resources: Mapping[str, bytes] | None = None
    ) -> flt.RenderState:
        return flt.RenderState(
            image=None,
            geometry=resize_request(request, self._config),
            source_format="",
            quality=self._config.quality,
            strip_exif=not self._config.preserve_exif,
            source=request.source,
            resources=resources or {},
            max_pixels=self._config.max_pixels,
            strict=self._strict,
        )

    def check_request(self, request: ImageRequest) -> None:
        """Refuse, before any I/O, requests whose canvas alone is over the output limit and
        (in strict mode) filters whose arguments do not parse."""
        self._bind(request)
        width, height = request.width, request.height
        if isinstance(width, int) and isinstance(height, int):
            self._check_output((width, height))

    def sources(self, request: ImageRequest) -> Sources:
        """What the pipeline must load for ``request`` (runs the pre-load filters)."""
        bound = self._bind(request)
        state = self._state(request)
        flt.run_phase(bound, "pre_load", state)
        resources = dict.fromkeys(url for item in bound for url in item.resources)
        return Sources(state.source, tuple(resources))

    def _check_output(self, size: tuple[int, int], frames: int = 1) -> None:
        limit = self._config.max_output_pixels
        if size[0] * size[1] * frames > limit:
            raise ImageTooLargeError(
                f"requested output {size[0]}x{size[1]} ({frames} frame(s)) is over the "
                f"{limit}-pixel limit"
            )

    def with_master(self, source: PixelSource) -> PixelSource:
        """``source`` with its master decoded (``imaging.master_size``), for a cache to keep;
        unchanged for an animation, whose frames are not kept."""
        master = decode_master(self._open(source.data), self._config.master_size)
        return dataclasses.replace(source, master=master)

    def render(
        self,
        source: PixelSource,
        request: ImageRequest,
        format_class: str = "default",
        *,
        resources: Mapping[str, bytes] | None = None,
        deadline: float | None = None,
    ) -> Rendered:
        """Render ``request`` from ``source``: from its master when it has one that holds
        the pixels this render needs, else from its bytes.

        ``format_class`` is the negotiated class (``default``, ``webp``, ``avif``, ``jpeg``),
        applied here once the source is known. ``resources`` holds the bytes of
        :meth:`sources`' resources. ``deadline`` is the request's ``time.monotonic()``
        deadline (None: none).
        """
        config = self._config
        bound = self._bind(request)
        state = self._state(request, resources)
        flt.run_phase(bound, "pre_load", state)
        master = source.master
        opened = master.opened if master is not None else self._open(source.data)
        state.source_format = opened.format
        state.oriented_size = opened.oriented_size
        flt.run_phase(bound, "after_load", state)
        output = geometry.output_size(state.geometry, opened.oriented_size)
        self._check_output(output, opened.frames)
        operations = meta.Operations()
        smart = self._smart_key(request, state, bound, opened, source.data)
        if request.meta and request.trim is None and smart is None:
            layout = layout_for(request, state, opened.oriented_size, config)
            return _meta_response(request, opened, state, bound, operations, layout)
        decoded = _decode(request, opened, state, operations, config, self._pixels(source))
        decoded, failed = self._detect(smart, decoded, state, source.data)
        if request.meta:
            rendered = _meta_response(request, opened, state, bound, operations, decoded.layout)
        else:
            record(decoded.layout, request, operations)
            rendered = self._produce(decoded, request, state, bound, opened, format_class)
        if failed:  # not stored, not cached for long (Thumbor's MAX_AGE_TEMP_IMAGE)
            return dataclasses.replace(
                rendered, cacheable=False, max_age=config.detection_error_max_age
            )
        return rendered

    def _open(self, data: bytes) -> formats.Opened:
        config = self._config
        return formats.open_image(
            data,
            max_pixels=config.max_pixels,
            respect_orientation=config.respect_orientation,
            max_frames=config.max_frames,
        )

    def _pixels(self, source: PixelSource) -> PixelLoader:
        """The master's pixels when it holds enough of them; else the source decoded."""
        master = source.master
        if master is None:
            return formats.load_pixels

        def load(opened: formats.Opened, need: tuple[int, int] | None) -> Image.Image:
            assert master is not None
            if master.covers(need):
                return master.pixels(opened, need)
            return formats.load_pixels(self._open(source.data), need)

        return load

    def _smart_key(
        self,
        request: ImageRequest,
        state: flt.RenderState,
        bound: tuple[flt.BoundFilter, ...],
        opened: formats.Opened,
        data: bytes,
    ) -> Hashable | None:
        """The detection cache key when this render must detect; None when it need not, or
        when the cache already knew the points (they are in ``state.focal_points`` then)."""
        if self._detection is None or not request.smart or state.focal_points:
            return None  # focal() and extract_focal() points win over detection
        shows_points = request.meta or request.debug or request.trim is not None
        if not shows_points and not any(item.spec.name == "red_eye" for item in bound):
            layout = layout_for(request, state, opened.oriented_size, self._config)
            if layout.plan.auto_crop is None:
                return None  # fit-in, stretch or the same aspect ratio: nothing to centre
        key = self._detection.key(state.source, data, opened.oriented_size, request.trim)
        cached = self._detection.cached(key)
        if cached is None:
            return key
        state.focal_points.extend(cached)
        return None

    def _detect(
        self, key: Hashable | None, decoded: _Decoded, state: flt.RenderState, data: bytes
    ) -> tuple[_Decoded, bool]:
        """Detect focal points and re-plan around them; the flag is True when detection
        failed (the default crop stays: a detector error never fails the request)."""
        if key is None or self._detection is None:
            return decoded, False

        def image() -> Image.Image:
            return self._detection_image(decoded, data)

        try:
            points = self._detection.detect(image, decoded.layout.work_size, key)
        except Exception:
            log.exception("smart detection failed on %s; using the default crop", state.source)
            return decoded, True
        state.focal_points.extend(points)
        return dataclasses.replace(decoded, layout=refocus(decoded.layout, state)), False

    def _detection_image(self, decoded: _Decoded, data: bytes) -> Image.Image:
        """The decoded image; or, when it was drafted below the detection budget, the source
        decoded again at that size, so the points do not depend on which size came first."""
        image, work = decoded.images[0], decoded.layout.work_size
        config = self._config
        if image.width * image.height >= min(config.detection_pixels, work[0] * work[1]):
            return image
        opened = self._open(data)
        size = detection_size(opened.oriented_size, config.detection_pixels)
        return formats.normalize_mode(formats.load_pixels(opened, size))

    def _produce(
        self,
        decoded: _Decoded,
        request: ImageRequest,
        state: flt.RenderState,
        bound: tuple[flt.BoundFilter, ...],
        opened: formats.Opened,
        format_class: str,
    ) -> Rendered:
        """Geometry and post-transform filters for each frame, then encoding."""
        layout = decoded.layout
        state.map_point = point_mapper(layout, request, opened.oriented_size)
        first = _filtered(decoded.images[0], layout, request, state, bound)
        choice = OutputChoice(
            requested=state.format,
            format_class=format_class,
            source_format=opened.format,
            image=first,
            animated=len(decoded.images) > 1,
            auto_png_to_jpg=(
                self._config.auto_png_to_jpg
                if state.auto_png_to_jpg is None
                else state.auto_png_to_jpg
            ),
        )
        fmt = output_format(choice, self._config)
        frames = [first]
        if fmt in formats.ANIMATED_FORMATS:
            for image in decoded.images[1:]:
                frame = _filtered(image, layout, request, state, bound)
                frames.append(frame if frame.size == first.size else frame.resize(first.size))
        timing = output.Timing(decoded.durations, decoded.loop)
        return output.encode(state, opened, frames, fmt, timing, self._config)


def _filtered(
    image: Image.Image,
    layout: Layout,
    request: ImageRequest,
    state: flt.RenderState,
    bound: tuple[flt.BoundFilter, ...],
) -> Image.Image:
    state.image = finish(image, layout, request, state)
    flt.run_phase(bound, "post_transform", state)
    return state.pixels


@dataclass(frozen=True, slots=True)
class _Decoded:
    """The decoded (and trimmed) frames, their layout, and the animation timing."""

    images: list[Image.Image]
    layout: Layout
    durations: tuple[int, ...] = ()
    loop: int | None = None


def _decode(
    request: ImageRequest,
    opened: formats.Opened,
    state: flt.RenderState,
    operations: meta.Operations,
    config: ImagingConfig,
    pixels: PixelLoader = formats.load_pixels,
) -> _Decoded:
    """Decode (drafting JPEGs when the output is smaller, every frame of an animation),
    normalise the colour mode and trim; return the frames and their layout."""
    size = opened.oriented_size
    layout = layout_for(request, state, size, config)
    durations: tuple[int, ...] = ()
    loop = None
    if opened.animated:
        frames = animation.read_frames(opened)
        images, durations, loop = frames.frames, frames.durations, frames.loop
    else:
        skip_draft = request.debug or request.trim is not None
        draft = None if skip_draft else draft_size(size, layout)
        images = [pixels(opened, draft)]
    images = [formats.normalize_mode(image) for image in images]
    if request.trim is not None:
        images, layout = _trimmed(images, request, state, operations, layout, config)
    scale = (images[0].size[0] / layout.work_size[0], images[0].size[1] / layout.work_size[1])
    return _Decoded(images, dataclasses.replace(layout, scale=scale), durations, loop)


def _trimmed(
    images: list[Image.Image],
    request: ImageRequest,
    state: flt.RenderState,
    operations: meta.Operations,
    layout: Layout,
    config: ImagingConfig,
) -> tuple[list[Image.Image], Layout]:
    assert request.trim is not None
    size = images[0].size
    if layout.work_size != size:
        images = [image.resize(layout.work_size, RESAMPLE) for image in images]
    crop = request.crop
    if crop is not None and layout.work_size != size:
        crop = geometry.scale_crop(crop, layout.work_size[0] / size[0])
    box = trim.trim_box(images[0], request.trim)
    if box is not None:
        operations.crop(box)
        images = [image.crop((box.left, box.top, box.right, box.bottom)) for image in images]
        if crop is not None:
            crop = Crop(
                crop.left - box.left,
                crop.top - box.top,
                crop.right - box.left,
                crop.bottom - box.top,
            )
    return images, layout_for(request, state, images[0].size, config, crop, trimmed=True)


def _meta_response(
    request: ImageRequest,
    opened: formats.Opened,
    state: flt.RenderState,
    bound: tuple[flt.BoundFilter, ...],
    operations: meta.Operations,
    layout: Layout,
) -> Rendered:
    """Thumbor's ``meta/`` JSON; size-changing filters run on a 1-bit placeholder."""
    record(layout, request, operations)
    target = operations.target(layout.work_size)
    engine_size = (int(target[0]), int(target[1]))
    if any(item.spec.meta and item.spec.phase == "post_transform" for item in bound):
        state.meta = True
        state.image = Image.new("1", (max(engine_size[0], 1), max(engine_size[1], 1)))
        flt.run_phase(bound, "post_transform", state)
        engine_size = state.pixels.size
    body = meta.meta_body(request.source, opened.frames, operations, target, engine_size)
    return Rendered(
        data=body, content_type="application/json", width=0, height=0, max_age=state.max_age
    )
