"""One render's steps on a :class:`Job`: decode (and trim), geometry and filters per frame,
and Thumbor's ``meta/`` answer. :class:`~thumbor_py.imaging.transform.Renderer` plans the
job and calls these in order; each checks the job's deadline between its big steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PIL import Image

from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import animation, formats, geometry, meta, trim
from thumbor_py.imaging import filters as flt
from thumbor_py.imaging.geometry import FocalPoint
from thumbor_py.imaging.layout import RESAMPLE, Layout, draft_size, finish, layout_for, record
from thumbor_py.imaging.master import PixelLoader
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.plan import Budget, OutputOptions, RenderPlan
from thumbor_py.url import Crop, ImageRequest


@dataclass(frozen=True, slots=True)
class Job:
    """One render's fixed inputs: the request, the source header, the plan, the output
    options, the bound filters and the budget (replaced, never changed)."""

    request: ImageRequest
    opened: formats.Opened
    plan: RenderPlan
    options: OutputOptions
    bound: tuple[flt.BoundFilter, ...]
    budget: Budget
    strict: bool
    config: ImagingConfig
    resources: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    # Whether ``opened`` was decoded for this render alone (not a shared cached master).
    owns_source: bool = False

    def release_source(self, keep: Image.Image) -> None:
        """Free the decoded source's pixels once geometry has made ``keep`` from them: a
        74-megapixel source need not sit in memory through the filters and the encode.

        Not for a shared master, an animation (its frames are already copies), ``keep``
        itself, or when EXIF is kept (some formats read it from the pixels' file late).
        """
        image = self.opened.image
        if (
            self.owns_source
            and not self.opened.animated
            and not self.config.preserve_exif
            and keep is not image
        ):
            image.close()

    def with_points(self, points: tuple[FocalPoint, ...] | list[FocalPoint]) -> Job:
        """This job with ``points`` added to the plan's focal points."""
        plan = dataclasses.replace(self.plan, focal_points=(*self.plan.focal_points, *points))
        return dataclasses.replace(self, plan=plan)

    def context(
        self, map_point: Callable[[float, float], tuple[float, float]] | None = None
    ) -> flt.FilterContext:
        """What the pixel filters may read."""
        return flt.FilterContext(
            plan=self.plan,
            budget=self.budget,
            resources=self.resources,
            max_pixels=self.config.max_pixels,
            max_kernel_size=self.config.max_kernel_size,
            map_point=map_point,
        )


def filtered(image: Image.Image, layout: Layout, job: Job, ctx: flt.FilterContext) -> Image.Image:
    """One frame through crop, resize and flip, then the pixel filters; the decoded source
    is released once geometry is done with it, and the result is held to the budget."""
    job.budget.checkpoint()
    image = finish(image, layout, job.request, job.plan)
    job.release_source(keep=image)
    ctx.check_canvas(image.size, "output")  # debug/ draws on the uncropped source
    return flt.apply_pixels(job.bound, image, ctx, strict=job.strict)


@dataclass(frozen=True, slots=True)
class Decoded:
    """The decoded (and trimmed) frames, their layout, and the animation timing. The
    renderer pops the frames as it filters them, so each is freed once it is done."""

    images: list[Image.Image]
    layout: Layout
    durations: tuple[int, ...] = ()
    loop: int | None = None


def decode(
    job: Job,
    operations: meta.Operations,
    config: ImagingConfig,
    pixels: PixelLoader = formats.load_pixels,
) -> Decoded:
    """Decode (drafting JPEGs when the output is smaller, every frame of an animation),
    normalise the colour mode and trim; return the frames and their layout."""
    request, opened = job.request, job.opened
    size = opened.oriented_size
    layout = layout_for(request, job.plan, size, config)
    durations: tuple[int, ...] = ()
    loop = None
    if opened.animated:
        frames = animation.read_frames(opened, job.budget.checkpoint)
        images, durations, loop = frames.frames, frames.durations, frames.loop
    else:
        skip_draft = request.debug or request.trim is not None
        draft = None if skip_draft else draft_size(size, layout)
        images = [pixels(opened, draft)]
    images = [formats.normalize_mode(image) for image in images]
    if request.trim is not None:
        images, layout = _trimmed(images, job, operations, layout, config)
    scale = (images[0].size[0] / layout.work_size[0], images[0].size[1] / layout.work_size[1])
    return Decoded(images, dataclasses.replace(layout, scale=scale), durations, loop)


def _trimmed(
    images: list[Image.Image],
    job: Job,
    operations: meta.Operations,
    layout: Layout,
    config: ImagingConfig,
) -> tuple[list[Image.Image], Layout]:
    request = job.request
    assert request.trim is not None
    size = images[0].size
    if layout.work_size != size:
        images = [image.resize(layout.work_size, RESAMPLE) for image in images]
    crop = request.crop
    if crop is not None and layout.work_size != size:
        crop = geometry.scale_crop(crop, layout.work_size[0] / size[0])
    box = trim.trim_box(images[0], request.trim, job.budget.checkpoint)
    if box is not None:
        operations.crop(box)
        if box.size != images[0].size:
            images = [image.crop((box.left, box.top, box.right, box.bottom)) for image in images]
            job.release_source(keep=images[0])
        if crop is not None:
            crop = Crop(
                crop.left - box.left,
                crop.top - box.top,
                crop.right - box.left,
                crop.bottom - box.top,
            )
    return images, layout_for(request, job.plan, images[0].size, config, crop, trimmed=True)


def meta_response(job: Job, operations: meta.Operations, layout: Layout) -> Rendered:
    """Thumbor's ``meta/`` JSON; size-changing filters run on a 1-bit placeholder."""
    request = job.request
    record(layout, request, operations)
    target = operations.target(layout.work_size)
    engine_size = (int(target[0]), int(target[1]))
    if any(item.spec.meta and item.spec.phase == "post_transform" for item in job.bound):
        image = Image.new("1", (max(engine_size[0], 1), max(engine_size[1], 1)))
        image = flt.apply_pixels(job.bound, image, job.context(), strict=job.strict, meta=True)
        engine_size = image.size
    body = meta.meta_body(request.source, job.opened.frames, operations, target, engine_size)
    return Rendered(
        data=body, content_type="application/json", width=0, height=0, max_age=job.options.max_age
    )
