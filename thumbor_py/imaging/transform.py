"""One render, synchronously: decode, orient, trim, crop, resize, flip, filter, encode.

Runs in a worker thread, never on the event loop. Geometry comes from the pure functions in
:mod:`thumbor_py.imaging.geometry`; pixels are only touched once the whole plan is known,
which lets JPEG sources be decoded at a reduced DCT scale and the crop and resize be done by
one resampling pass. Animations go through the same steps frame by frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.errors import ConfigError, ImageTooLargeError
from thumbor_py.imaging import animation, formats, geometry, meta, trim
from thumbor_py.imaging import filters as flt
from thumbor_py.imaging.layout import (
    RESAMPLE,
    Layout,
    draft_size,
    finish,
    layout_for,
    point_mapper,
    record,
    resize_request,
)
from thumbor_py.negotiation import OutputChoice, output_format
from thumbor_py.url import Crop, ImageRequest

_QUALITY_FORMATS = frozenset({"JPEG", "WEBP", "AVIF", "HEIF"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """A finished response body and what the HTTP layer needs to know about it."""

    data: bytes
    content_type: str
    width: int
    height: int
    max_age: int | None = None
    # Whether result storage may keep this body (the pipeline checks it before storing).
    cacheable: bool = True
    frames: int = 1


@dataclass(frozen=True, slots=True)
class Sources:
    """What to load before rendering: the image (``extract_focal()`` may change it) and
    the images filter arguments name (``watermark``, ``frame``), loaded by the same loader."""

    image: str
    resources: tuple[str, ...] = ()


class Renderer:
    """Renders requests under one imaging configuration and filter registry.

    The filter plugins named in ``config.filter_plugins`` are resolved here, at start-up.
    """

    def __init__(
        self,
        config: ImagingConfig,
        registry: Mapping[str, flt.FilterSpec],
        *,
        strict_filters: bool | None = None,
    ) -> None:
        if not 0 <= config.avif_speed <= 10:
            raise ConfigError("imaging.avif_speed: must be between 0 (slowest) and 10")
        if config.max_frames < 0:
            raise ConfigError("imaging.max_frames: must be 0 (no cap) or more")
        plugins = flt.load_plugins(config.filter_plugins)
        self._config = config
        self._registry = {**registry, **{spec.name: spec for spec in plugins}}
        self._allowed = frozenset(config.filters) if config.filters is not None else None
        self._strict = config.strict_filters if strict_filters is None else strict_filters

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

    def render(
        self,
        data: bytes,
        request: ImageRequest,
        format_class: str = "default",
        *,
        resources: Mapping[str, bytes] | None = None,
    ) -> Rendered:
        """Render ``request`` from the source bytes ``data``.

        ``format_class`` comes from :mod:`thumbor_py.negotiation` and is applied here, once
        the source is known. ``resources`` holds the bytes of :meth:`sources`' resources.
        """
        config = self._config
        bound = self._bind(request)
        state = self._state(request, resources)
        flt.run_phase(bound, "pre_load", state)
        opened = formats.open_image(
            data,
            max_pixels=config.max_pixels,
            respect_orientation=config.respect_orientation,
            max_frames=config.max_frames,
        )
        state.source_format = opened.format
        state.oriented_size = opened.oriented_size
        flt.run_phase(bound, "after_load", state)
        output = geometry.output_size(state.geometry, opened.oriented_size)
        self._check_output(output, opened.frames)
        operations = meta.Operations()
        if request.meta and request.trim is None:
            layout = layout_for(request, state, opened.oriented_size, config)
            return _meta_response(request, opened, state, bound, operations, layout)
        decoded = _decode(request, opened, state, operations, config)
        if request.meta:
            return _meta_response(request, opened, state, bound, operations, decoded.layout)
        record(decoded.layout, request, operations)
        return self._produce(decoded, request, state, bound, opened, format_class)

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
        return _encode(state, opened, frames, fmt, decoded, self._config)


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
        images = [formats.load_pixels(opened, draft)]
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


def _encode(
    state: flt.RenderState,
    opened: formats.Opened,
    frames: list[Image.Image],
    fmt: str,
    decoded: _Decoded,
    config: ImagingConfig,
) -> Rendered:
    loop = decoded.loop if decoded.loop is not None or fmt == "GIF" else 1
    options = formats.EncodeOptions(
        format=fmt,
        quality=state.quality,
        progressive=config.progressive_jpeg,
        icc_profile=None if state.strip_icc else formats.source_icc(opened),
        exif=None if state.strip_exif else _exif(opened),
        avif_speed=config.avif_speed,
        keep_palette=opened.mode in ("P", "1") and len(frames) == 1,
        durations=decoded.durations[: len(frames)],
        loop=loop,
    )
    image: Image.Image | list[Image.Image] = frames if len(frames) > 1 else frames[0]

    def encoder(quality: int) -> bytes:
        return formats.encode(image, dataclasses.replace(options, quality=quality))

    if state.max_bytes and fmt in _QUALITY_FORMATS:
        data = formats.fit_quality(encoder, state.quality, state.max_bytes)
    else:
        data = encoder(state.quality)
    return Rendered(
        data=data,
        content_type=formats.CONTENT_TYPES[fmt],
        width=frames[0].size[0],
        height=frames[0].size[1],
        max_age=state.max_age,
        frames=len(frames),
    )


def _exif(opened: formats.Opened) -> bytes | None:
    exif_data = opened.image.getexif()
    exif_data.pop(0x0112, None)  # pixels are already upright
    return exif_data.tobytes() if exif_data else None


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
