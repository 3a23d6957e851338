"""Animated GIF and WebP sources keep every frame, duration and the loop count."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile, ImageSequence

from tests.imaging.helpers import pixel
from thumbor_py.assembly import build_renderer
from thumbor_py.config import ImagingConfig
from thumbor_py.errors import ImageTooLargeError
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.output import Rendered
from thumbor_py.negotiation import negotiate
from thumbor_py.url import parse

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
DURATIONS = [50, 100, 150]


def animation(fmt: str = "GIF", size: tuple[int, int] = (200, 150), frames: int = 3) -> bytes:
    images = []
    for index in range(frames):
        image = Image.new("RGB", size, COLOURS[index % 3])
        image.paste((255, 255, 255), (0, 0, size[0] // 4, size[1]))  # a white left stripe
        images.append(image)
    buffer = io.BytesIO()
    durations = [DURATIONS[i % 3] for i in range(frames)]
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


def render(data: bytes, path: str, format_class: str = "default", **config: object) -> Rendered:
    renderer = build_renderer(ImagingConfig(**config))  # type: ignore[arg-type]
    return renderer.render(PixelSource("test", data), parse(f"/unsafe/{path}/anim"), format_class)


def frames_of(
    rendered: Rendered,
) -> tuple[ImageFile.ImageFile, list[Image.Image], list[int | None]]:
    image = Image.open(io.BytesIO(rendered.data))
    frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    durations: list[int | None] = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()  # WebP fills in the duration on load
        durations.append(image.info.get("duration"))
    image.seek(0)
    return image, frames, durations


def test_fit_in_grayscale_keeps_every_frame_and_duration() -> None:
    rendered = render(animation(), "fit-in/100x100/filters:grayscale()")
    image, frames, durations = frames_of(rendered)
    assert (image.format, image.size, len(frames)) == ("GIF", (100, 75), 3)
    assert durations == DURATIONS
    assert image.info.get("loop") == 0
    for frame in frames:
        red, green, blue = frame.getpixel((70, 40))  # type: ignore[misc]
        assert red == green == blue  # grey
    greys = [frame.getpixel((70, 40))[0] for frame in frames]  # type: ignore[index]
    assert len(set(greys)) == 3  # each frame kept its own content


@pytest.mark.parametrize(
    ("path", "size", "white"),
    [
        pytest.param("100x100", (100, 100), (5, 50), id="crop-resize"),
        pytest.param("-100x75", (100, 75), (95, 40), id="flip"),
        pytest.param("0x0:100x150/50x75", (50, 75), (5, 40), id="manual-crop"),
        pytest.param("100x75/filters:rotate(90)", (75, 100), (40, 95), id="rotate"),
    ],
)
def test_geometry_and_filters_apply_to_every_frame(
    path: str, size: tuple[int, int], white: tuple[int, int]
) -> None:
    _, frames, durations = frames_of(render(animation(), path))
    assert len(frames) == 3
    assert durations == DURATIONS
    for index, frame in enumerate(frames):
        assert frame.size == size
        assert min(frame.getpixel(white)) > 240  # type: ignore[arg-type]
        opposite = frame.getpixel((size[0] - 1 - white[0], size[1] - 1 - white[1]))
        assert min(opposite) < 20  # type: ignore[arg-type]
        centre = frame.getpixel((size[0] // 2, size[1] // 2))
        assert max(range(3), key=lambda band: centre[band]) == index  # type: ignore[index]


def test_format_webp_makes_an_animated_webp() -> None:
    image, frames, durations = frames_of(render(animation(), "fit-in/100x100/filters:format(webp)"))
    assert (image.format, len(frames), durations) == ("WEBP", 3, DURATIONS)
    assert pixel(frames[1], (60, 40))[1] > 200  # the green frame


def test_animated_webp_source_stays_animated() -> None:
    image, frames, durations = frames_of(render(animation("WEBP"), "50x50"))
    assert (image.format, len(frames), durations) == ("WEBP", 3, DURATIONS)


def test_format_jpeg_takes_the_first_frame() -> None:
    image, frames, _ = frames_of(render(animation(), "filters:format(jpeg)"))
    assert (image.format, len(frames)) == ("JPEG", 1)


def test_frame_cap_and_frame_counted_pixel_budget() -> None:
    with pytest.raises(ImageTooLargeError, match="frame"):
        render(animation(frames=4), "0x0", max_frames=3)
    assert len(frames_of(render(animation(frames=4), "0x0", max_frames=0))[1]) == 4
    # 200x150 x 3 frames = 90 000 pixels: over a 60 000 budget that one frame fits in.
    with pytest.raises(ImageTooLargeError, match="3 frame"):
        render(animation(), "0x0", max_pixels=60_000)
    with pytest.raises(ImageTooLargeError):
        render(animation(), "100x100", max_output_pixels=20_000)


@pytest.mark.parametrize(
    ("convert", "fmt"),
    [pytest.param(False, "GIF", id="not-configured"), pytest.param(True, "WEBP", id="configured")],
)
def test_animations_are_auto_converted_only_when_configured(convert: bool, fmt: str) -> None:
    config = ImagingConfig(auto_webp=True, auto_convert_animated=convert)
    negotiated = negotiate(parse("/unsafe/x.gif"), "image/webp,*/*", config)
    assert negotiated.format_class == "webp"  # decided before the source is known
    rendered = render(
        animation(), "0x0", negotiated.format_class, auto_webp=True, auto_convert_animated=convert
    )
    image, frames, _ = frames_of(rendered)
    assert (image.format, len(frames)) == (fmt, 3)


def test_transparent_gif_frames_keep_their_transparency() -> None:
    frames = []
    for colour in COLOURS:
        image = Image.new("RGBA", (40, 30), (*colour, 255))
        image.paste((0, 0, 0, 0), (0, 0, 10, 30))
        frames.append(image)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    rendered = render(buffer.getvalue(), "20x15")
    image = Image.open(io.BytesIO(rendered.data))
    for index in range(3):
        image.seek(index)
        rgba = image.convert("RGBA")
        assert pixel(rgba, (1, 7))[3] == 0
        assert pixel(rgba, (15, 7))[3] == 255
