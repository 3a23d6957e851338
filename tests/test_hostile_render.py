"""Bounded renders: frames checked as declared, the output budget re-checked after filters
that grow the canvas, filter costs capped, linear-time argument parsing, deadlines that stop
a render. Every hostile file is generated here, in a few bytes."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.hostile_images import gif_frames, gif_growing_canvas, nine_patch, tiff_pages
from thumbor_py.app import create_app
from thumbor_py.config import Config, ImagingConfig
from thumbor_py.errors import DeadlineExceededError, FilterArgumentError, ImageTooLargeError
from thumbor_py.imaging import formats
from thumbor_py.imaging.filters import (
    DECIMAL,
    POSITIVE_NUMBER,
    Arg,
    FilterContext,
    bind,
    build_registry,
    image_filter,
)
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.transform import Renderer
from thumbor_py.url import FilterCall, parse

PARSED: list[str] = []


def _counted(text: str) -> int:
    PARSED.append(text)
    return int(text)


@image_filter(Arg(r"\d+", _counted))
def counted(image: Image.Image, ctx: FilterContext, value: int) -> Image.Image:
    """A plugin filter that records each time its argument is parsed."""
    return image


def config(root: Path, **imaging: Any) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": "file", "settings": {"root": str(root)}},
            "imaging": {
                "detectors": [],
                "filter_plugins": [f"{__name__}:counted"],
                **imaging,
            },
        },
        env={},
    )


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def get(client: Any, path: str) -> tuple[int, str]:
    response = await client.get(path)
    body = await response.read()
    text = body.decode("utf-8", "replace") if response.status != 200 else ""
    return response.status, text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(gif_growing_canvas((9000, 9000)), "frame 2 is 9000x9000", id="gif-1x1-9000"),
        pytest.param(tiff_pages((1, 1), (9000, 9000)), "frame 2 is 9000x9000", id="tiff-page-2"),
    ],
)
async def test_a_frame_over_max_pixels_is_refused_before_decoding(
    aiohttp_client: Any, tmp_path: Path, data: bytes, reason: str
) -> None:
    assert len(data) < 1000  # the declared size costs the attacker nothing
    (tmp_path / "bomb").write_bytes(data)
    client = await aiohttp_client(create_app(config(tmp_path)))
    status, text = await get(client, "/unsafe/100x100/bomb")
    assert status == 400
    assert reason in text
    assert "max_pixels" in text


def test_a_stray_byte_before_a_frame_does_not_hide_it() -> None:
    # Pillow skips bytes it does not know between blocks; the header walk must too.
    data = gif_growing_canvas((9000, 9000))
    second = data.rindex(b"\x2c")
    hidden = data[:second] + b"\x00\x07" + data[second:]
    with pytest.raises(ImageTooLargeError, match="frame 2 is 9000x9000"):
        formats.open_image(hidden, max_pixels=75_000_000, respect_orientation=True)


def test_frames_add_up_against_max_pixels() -> None:
    # A 1x1 first frame, then two 160x160 ones: each is under the limit, not all three.
    data = gif_growing_canvas((160, 160), (160, 160))
    formats.open_image(data, max_pixels=51_201, respect_orientation=True)
    with pytest.raises(ImageTooLargeError, match="frames 1-3 add up to 51201"):
        formats.open_image(data, max_pixels=51_200, respect_orientation=True)


def test_frames_of_a_real_animation_within_the_limit_open() -> None:
    opened = formats.open_image(
        gif_frames((100, 100), 5), max_pixels=50_000, respect_orientation=True
    )
    assert opened.frames == 5


def test_a_gif_canvas_grown_by_a_later_frame_counts_for_every_later_frame() -> None:
    data = gif_growing_canvas((300, 200))  # frame 2 grows the canvas to 300x200
    with pytest.raises(ImageTooLargeError, match="frame 2 is 300x200"):
        formats.open_image(data, max_pixels=50_000, respect_orientation=True)


async def test_fill_on_an_animation_is_refused_for_the_whole_box_before_decoding(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "anim.gif").write_bytes(gif_frames((20, 20), 20))
    client = await aiohttp_client(create_app(config(tmp_path)))
    status, text = await get(client, "/unsafe/fit-in/2000x2000/filters:fill(red)/anim.gif")
    assert status == 400
    assert "2000x2000 (20 frame(s))" in text
    assert "max_output_pixels" in text
    status, _ = await get(client, "/unsafe/fit-in/200x200/filters:fill(red)/anim.gif")
    assert status == 200


async def test_each_frame_call_is_checked_before_it_grows_the_canvas(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "small.png").write_bytes(png((100, 100)))
    (tmp_path / "patch.png").write_bytes(nine_patch(1000))
    app = create_app(config(tmp_path, max_output_pixels=4_000_000))
    client = await aiohttp_client(app)
    status, _ = await get(client, "/unsafe/100x100/filters:frame(patch.png)/small.png")
    assert status == 200
    three = ":".join(["frame(patch.png)"] * 3)
    status, text = await get(client, f"/unsafe/100x100/filters:{three}/small.png")
    assert status == 400
    assert "frame() output" in text
    assert "max_output_pixels" in text


async def test_too_many_filters_are_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    (tmp_path / "small.png").write_bytes(png((40, 40)))
    client = await aiohttp_client(create_app(config(tmp_path, max_filters=5)))
    status, _ = await get(client, "/unsafe/filters:" + ":".join(["grayscale()"] * 5) + "/small.png")
    assert status == 200
    status, text = await get(client, "/unsafe/filters:" + ":".join(["brightness(1)"] * 6) + "/x")
    assert (status, text) == (400, "6 filters, over the 5-filter max_filters limit")


async def test_a_convolution_matrix_over_the_kernel_limit_is_refused(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "small.png").write_bytes(png((40, 40)))
    client = await aiohttp_client(create_app(config(tmp_path)))
    eleven = ";".join(["1"] * 121)
    status, text = await get(client, f"/unsafe/filters:convolution({eleven},11)/small.png")
    assert status == 400
    assert "max_kernel_size" in text
    seven = ";".join(["1"] * 49)
    status, _ = await get(client, f"/unsafe/filters:convolution({seven},7)/small.png")
    assert status == 200


async def test_filters_are_parsed_once_per_request(aiohttp_client: Any, tmp_path: Path) -> None:
    (tmp_path / "small.png").write_bytes(png((40, 40)))
    client = await aiohttp_client(create_app(config(tmp_path)))
    PARSED.clear()
    status, _ = await get(client, "/unsafe/20x20/filters:counted(7)/small.png")
    assert status == 200
    assert PARSED == ["7"]


@pytest.mark.parametrize("digits", [2000, 5000, 50_000])
def test_long_numeric_arguments_parse_or_are_refused_in_linear_time(digits: int) -> None:
    registry = build_registry()
    number = "9" * digits
    call = FilterCall("sharpen", f"{number},{number},x")
    started = time.perf_counter()
    assert bind([call], registry=registry) == ()  # "x" is no boolean: the call is dropped
    assert time.perf_counter() - started < 0.05
    started = time.perf_counter()
    bound = bind([FilterCall("blur", f"5,{'1' * digits}.5")], registry=registry)
    assert time.perf_counter() - started < 0.05
    assert len(bound) == (1 if digits * 2 < 4096 else 0)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        pytest.param("watermark", "a" + " " * 4000 + "b,1,1,x", id="string-inner-spaces"),
        pytest.param("watermark", "'" * 4000 + ",1,1,x", id="string-quotes"),
        pytest.param("convolution", "1;" * 2000 + "1,3,x", id="matrix"),
        pytest.param("curve", "[" + "(1,1)," * 680 + "],[],[],x", id="curve"),
    ],
)
def test_other_long_arguments_match_in_linear_time(name: str, args: str) -> None:
    registry, call = build_registry(), FilterCall(name, args)
    started = time.perf_counter()
    bind([call], registry=registry)
    assert time.perf_counter() - started < 0.02


@pytest.mark.parametrize(
    ("regex", "text"),
    [
        pytest.param(DECIMAL.regex, "12.5", id="decimal"),
        pytest.param(DECIMAL.regex, ".5", id="decimal-fraction"),
        pytest.param(DECIMAL.regex, "-3.", id="decimal-point"),
        pytest.param(POSITIVE_NUMBER.regex, "0042", id="positive"),
    ],
)
def test_the_unambiguous_patterns_accept_what_thumbor_accepts(regex: str, text: str) -> None:
    import re

    assert re.fullmatch(regex, text)


def test_strict_mode_refuses_too_many_filters_before_parsing_them() -> None:
    calls = [FilterCall("blur", "x")] * 30
    with pytest.raises(FilterArgumentError, match="over the 20-filter"):
        bind(calls, registry=build_registry(), max_filters=20, strict=True)


def _source(size: tuple[int, int]) -> bytes:
    image = Image.effect_noise(size, 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_render_stops_at_its_deadline_within_half_a_second_of_cpu() -> None:
    renderer = Renderer(ImagingConfig(detectors=(), master_cache_bytes=0), build_registry())
    data = _source((800, 800))
    heavy = ":".join(["sharpen(2,1,false)", "blur(40)", "convolution(1;2;1;2;4;2;1;2;1,3)"] * 6)
    request = parse(f"/unsafe/800x800/filters:{heavy}/x.png")
    granted = 0.2
    started_cpu, started = time.thread_time(), time.monotonic()
    with pytest.raises(DeadlineExceededError):
        renderer.render(PixelSource("x.png", data), request, deadline=started + granted)
    cpu = time.thread_time() - started_cpu
    # CPU before the deadline is at most the wall time granted (one thread): the rest was
    # spent after it.
    assert cpu - granted < 0.5, f"{cpu:.2f} s of CPU for a {granted} s deadline"


def test_a_render_past_its_deadline_does_not_start() -> None:
    renderer = Renderer(ImagingConfig(detectors=()), build_registry())
    started = time.thread_time()
    with pytest.raises(DeadlineExceededError):
        renderer.render(
            PixelSource("x.png", _source((200, 200))),
            parse("/unsafe/x.png"),
            deadline=time.monotonic(),
        )
    assert time.thread_time() - started < 0.1


def test_blur_costs_the_same_for_any_radius() -> None:
    renderer = Renderer(ImagingConfig(detectors=()), build_registry())
    data = _source((1000, 1000))
    costs = []
    for radius in (1, 150):
        started = time.thread_time()
        renderer.render(PixelSource("x.png", data), parse(f"/unsafe/filters:blur({radius})/x.png"))
        costs.append(time.thread_time() - started)
    assert costs[1] < costs[0] * 3 + 0.2, costs


def _opened_by_render(monkeypatch: pytest.MonkeyPatch, path: str, **config: Any) -> formats.Opened:
    seen: list[formats.Opened] = []
    original = formats.open_image

    def spy(data: bytes, **kwargs: Any) -> formats.Opened:
        seen.append(original(data, **kwargs))
        return seen[-1]

    monkeypatch.setattr(formats, "open_image", spy)
    renderer = Renderer(ImagingConfig(detectors=(), **config), build_registry())
    rendered = renderer.render(PixelSource("x.png", _source((300, 200))), parse(path))
    assert rendered.width == 150
    return seen[0]


def test_the_decoded_source_is_freed_before_the_filters_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = _opened_by_render(monkeypatch, "/unsafe/150x100/filters:sharpen(1,1,true)/x.png")
    with pytest.raises(ValueError, match="closed image"):
        opened.image.load()


def test_the_source_is_kept_when_its_exif_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _opened_by_render(monkeypatch, "/unsafe/150x100/x.png", preserve_exif=True)
    opened.image.load()


@pytest.mark.parametrize(
    ("size", "content_type"),
    [
        pytest.param((200, 150), "image/avif", id="small-stays-avif"),
        pytest.param((2100, 2000), "image/webp", id="large-becomes-webp"),
    ],
)
def test_avif_over_its_pixel_cap_is_encoded_as_webp(
    size: tuple[int, int], content_type: str
) -> None:
    renderer = Renderer(ImagingConfig(detectors=()), build_registry())
    request = parse(f"/unsafe/{size[0]}x{size[1]}/filters:format(avif)/x.png")
    rendered = renderer.render(PixelSource("x.png", _source((210, 200))), request)
    assert (rendered.content_type, rendered.width, rendered.height) == (content_type, *size)


def test_debug_on_a_source_over_the_output_budget_is_refused() -> None:
    renderer = Renderer(ImagingConfig(detectors=(), max_output_pixels=10_000), build_registry())
    renderer.render(PixelSource("x.png", _source((90, 90))), parse("/unsafe/debug/50x50/x.png"))
    with pytest.raises(ImageTooLargeError, match="output 200x200"):
        renderer.render(
            PixelSource("x.png", _source((200, 200))), parse("/unsafe/debug/50x50/x.png")
        )


@pytest.mark.parametrize("strict", [False, True])
def test_a_watermark_image_over_the_output_budget_is_not_decoded(strict: bool) -> None:
    config = ImagingConfig(detectors=(), max_output_pixels=20_000, strict_filters=strict)
    renderer = Renderer(config, build_registry())
    request = parse("/unsafe/100x100/filters:watermark(m.png,0,0,0)/x.png")
    big = {"m.png": png((150, 150))}  # 22,500 pixels
    if strict:
        with pytest.raises(FilterArgumentError, match="20000-pixel limit"):
            renderer.render(PixelSource("x.png", _source((100, 100))), request, resources=big)
        return
    rendered = renderer.render(PixelSource("x.png", _source((100, 100))), request, resources=big)
    corner = Image.open(io.BytesIO(rendered.data)).convert("RGB").getpixel((5, 5))
    assert corner != (200, 60, 30)  # rendered without the watermark
    small = {"m.png": png((50, 50))}
    marked = renderer.render(PixelSource("x.png", _source((100, 100))), request, resources=small)
    assert Image.open(io.BytesIO(marked.data)).convert("RGB").getpixel((5, 5)) == (200, 60, 30)
