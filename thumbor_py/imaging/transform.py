"""One render, synchronously: decode, orient, trim, crop, resize, flip, filter, encode.

Runs in a worker thread, never on the event loop. Geometry comes from the pure functions in
:mod:`thumbor_py.imaging.geometry`; pixels are only touched once the whole plan is known,
which lets JPEG sources be decoded at a reduced DCT scale and the crop and resize be done by
one resampling pass. Animations go through the same steps frame by frame.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import filters as flt
from thumbor_py.imaging import formats, geometry, meta, output
from thumbor_py.imaging.choice import OutputChoice, output_format
from thumbor_py.imaging.detection import SmartDetection, detection_size
from thumbor_py.imaging.job import Decoded, Job, decode, filtered, meta_response
from thumbor_py.imaging.layout import layout_for, point_mapper, record, refocus, resize_request
from thumbor_py.imaging.master import PixelLoader, PixelSource, decode_master
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.plan import Budget, OutputOptions, RenderPlan
from thumbor_py.url import FilterCall, ImageRequest

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
        self._bind_calls = functools.lru_cache(maxsize=512)(self._bind_uncached)

    def _bind(self, request: ImageRequest) -> tuple[flt.BoundFilter, ...]:
        """The URL's filters, parsed and bound once per distinct filter list (the three
        calls a request makes, and every request with the same filters, share one)."""
        return self._bind_calls(request.filters)

    def _bind_uncached(self, calls: tuple[FilterCall, ...]) -> tuple[flt.BoundFilter, ...]:
        return flt.bind(
            calls,
            registry=self._registry,
            allowed=self._allowed,
            strict=self._strict,
            max_filters=self._config.max_filters,
        )

    def _plan(self, request: ImageRequest, bound: tuple[flt.BoundFilter, ...]) -> RenderPlan:
        """The request's plan after its pre-load filters."""
        plan = RenderPlan(source=request.source, geometry=resize_request(request, self._config))
        return flt.apply_plan(bound, "pre_load", plan, strict=self._strict)

    def check_request(self, request: ImageRequest) -> None:
        """Refuse, before any I/O, requests whose canvas alone is over the output limit,
        too many filters and (in strict mode) filters whose arguments do not parse."""
        self._bind(request)
        width, height = request.width, request.height
        if isinstance(width, int) and isinstance(height, int):
            self._budget().check_canvas((width, height), "requested output")

    def sources(self, request: ImageRequest) -> Sources:
        """What the pipeline must load for ``request`` (runs the pre-load filters)."""
        bound = self._bind(request)
        plan = self._plan(request, bound)
        resources = dict.fromkeys(url for item in bound for url in item.resources)
        return Sources(plan.source, tuple(resources))

    def _budget(self, frames: int = 1, deadline: float | None = None) -> Budget:
        return Budget(
            max_output_pixels=self._config.max_output_pixels, frames=frames, deadline=deadline
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
        :meth:`sources`' resources. Past ``deadline`` (a :func:`time.monotonic` value),
        checked between the big steps, frames and filters, the render stops with
        ``DeadlineExceededError``.
        """
        bound, budget = self._bind(request), self._budget(deadline=deadline)
        plan = self._plan(request, bound)
        budget.checkpoint()
        master, data = source.master, source.data
        opened = master.opened if master is not None else self._open(data)
        job = self._job(request, bound, plan, opened, budget.for_frames(opened.frames))
        job = dataclasses.replace(job, resources=resources or {}, owns_source=master is None)
        operations = meta.Operations()
        smart, job = self._smart_key(job, data)
        if request.meta and request.trim is None and smart is None:
            layout = layout_for(request, job.plan, opened.oriented_size, self._config)
            return meta_response(job, operations, layout)
        job.budget.checkpoint()
        decoded = decode(job, operations, self._config, self._pixels(source))
        job.budget.checkpoint()
        decoded, job, failed = self._detect(smart, decoded, job, data)
        if request.meta:
            rendered = meta_response(job, operations, decoded.layout)
        else:
            record(decoded.layout, request, operations)
            rendered = self._produce(decoded, job, format_class)
        if failed:  # not stored, not cached for long (Thumbor's MAX_AGE_TEMP_IMAGE)
            return dataclasses.replace(
                rendered, cacheable=False, max_age=self._config.detection_error_max_age
            )
        return rendered

    def _job(
        self,
        request: ImageRequest,
        bound: tuple[flt.BoundFilter, ...],
        plan: RenderPlan,
        opened: formats.Opened,
        budget: Budget,
    ) -> Job:
        """The after-load plan and the output options; refuses (400) what the URL can be
        known to produce over the output budget before any pixel is decoded."""
        plan = dataclasses.replace(
            plan, source_format=opened.format, oriented_size=opened.oriented_size
        )
        plan = flt.apply_plan(bound, "after_load", plan, strict=self._strict)
        budget.check_canvas(geometry.output_size(plan.geometry, opened.oriented_size))
        if any(item.spec.grows for item in bound):  # fill(), upscale(): up to the box
            output_size = geometry.output_size(plan.geometry, opened.oriented_size)
            budget.check_canvas(plan.requested_size(output_size), "requested box")
        options = OutputOptions(
            quality=self._config.quality, strip_exif=not self._config.preserve_exif
        )
        options = flt.apply_options(bound, options, strict=self._strict)
        return Job(request, opened, plan, options, bound, budget, self._strict, self._config)

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

    def _smart_key(self, job: Job, data: bytes) -> tuple[Hashable | None, Job]:
        """The detection cache key when this render must detect; None when it need not, or
        when the cache already knew the points (they are in the returned plan then)."""
        request, plan = job.request, job.plan
        if self._detection is None or not request.smart or plan.focal_points:
            return None, job  # focal() and extract_focal() points win over detection
        shows_points = request.meta or request.debug or request.trim is not None
        if not shows_points and not any(item.spec.name == "red_eye" for item in job.bound):
            layout = layout_for(request, plan, job.opened.oriented_size, self._config)
            if layout.plan.auto_crop is None:
                return None, job  # fit-in, stretch or the same aspect ratio: nothing to centre
        key = self._detection.key(plan.source, data, job.opened.oriented_size, request.trim)
        cached = self._detection.cached(key)
        if cached is None:
            return key, job
        return None, job.with_points(cached)

    def _detect(
        self, key: Hashable | None, decoded: Decoded, job: Job, data: bytes
    ) -> tuple[Decoded, Job, bool]:
        """Detect focal points and re-plan around them; the flag is True when detection
        failed (the default crop stays: a detector error never fails the request)."""
        if key is None or self._detection is None:
            return decoded, job, False

        def image() -> Image.Image:
            return self._detection_image(decoded, data)

        try:
            points = self._detection.detect(image, decoded.layout.work_size, key)
        except Exception:
            log.exception("smart detection failed on %s; using the default crop", job.plan.source)
            return decoded, job, True
        job = job.with_points(points)
        return dataclasses.replace(decoded, layout=refocus(decoded.layout, job.plan)), job, False

    def _detection_image(self, decoded: Decoded, data: bytes) -> Image.Image:
        """The decoded image; or, when it was drafted below the detection budget, the source
        decoded again at that size, so the points do not depend on which size came first."""
        image, work = decoded.images[0], decoded.layout.work_size
        config = self._config
        if image.width * image.height >= min(config.detection_pixels, work[0] * work[1]):
            return image
        opened = self._open(data)
        size = detection_size(opened.oriented_size, config.detection_pixels)
        return formats.normalize_mode(formats.load_pixels(opened, size))

    def _produce(self, decoded: Decoded, job: Job, format_class: str) -> Rendered:
        """Geometry and post-transform filters for each frame, then encoding."""
        layout, opened = decoded.layout, job.opened
        ctx = job.context(point_mapper(layout, job.request, opened.oriented_size))
        animated = len(decoded.images) > 1
        # Frames are handed over one by one (popped), so each decoded frame is freed as soon
        # as geometry is done with it, before the filters and the encode run.
        first = filtered(decoded.images.pop(0), layout, job, ctx)
        choice = OutputChoice(
            requested=job.options.format,
            format_class=format_class,
            source_format=opened.format,
            image=first,
            animated=animated,
            auto_png_to_jpg=(
                self._config.auto_png_to_jpg
                if job.options.auto_png_to_jpg is None
                else job.options.auto_png_to_jpg
            ),
        )
        fmt = output_format(choice, self._config)
        frames = [first]
        while fmt in formats.ANIMATED_FORMATS and decoded.images:
            frame = filtered(decoded.images.pop(0), layout, job, ctx)
            frames.append(frame if frame.size == first.size else frame.resize(first.size))
        job.budget.checkpoint()
        timing = output.Timing(decoded.durations, decoded.loop)
        return output.encode(job.options, opened, frames, fmt, timing, self._config, job.budget)
