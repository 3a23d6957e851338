"""Fetch once, render many: the bounded master cache, rendering from it, and the pipeline
fetching and decoding each source once for all of its sizes."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest
from PIL import Image

from tests.fakes import CountingLoader
from tests.test_decode_quality import MIN_PSNR, phone_jpeg, psnr
from thumbor_py import url
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.imaging import formats
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.master import (
    SOURCE_STAMP,
    Master,
    MasterCache,
    MasterTooSmallError,
    SourceStamp,
)
from thumbor_py.imaging.transform import Renderer


def renderer(**imaging: Any) -> Renderer:
    config = Config.from_mapping(
        {"security": {"allow_unsafe": True}, "imaging": {"detectors": [], **imaging}}
    )
    return Renderer(config.imaging, build_registry())


@pytest.fixture(scope="module")
def large() -> bytes:
    return phone_jpeg((2400, 1800))


def master_of(data: bytes, size: tuple[int, int] = (40, 30), nbytes: int = 100) -> Master:
    opened = formats.open_image(data, max_pixels=10**9, respect_orientation=True)
    return Master(Image.new("RGB", size), opened, 1, nbytes, time.monotonic())


# --- the cache itself -------------------------------------------------------------------


def test_is_off_when_its_budget_is_zero() -> None:
    assert renderer(master_cache_bytes=0).masters is None


def test_evicts_least_recently_used_past_its_byte_budget(large: bytes) -> None:
    cache = MasterCache(max_bytes=250, master_size=100, ttl=60)
    for key in ("a", "b"):
        cache.put(key, master_of(large))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", master_of(large))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.nbytes == 200
    assert len(cache) == 2


def test_refuses_a_master_over_the_whole_budget(large: bytes) -> None:
    cache = MasterCache(max_bytes=50, master_size=100, ttl=60)
    assert not cache.put("a", master_of(large, nbytes=51))
    assert cache.get("a") is None


def test_forgets_masters_older_than_the_ttl(large: bytes) -> None:
    cache = MasterCache(max_bytes=1000, master_size=100, ttl=-1)
    cache.put("a", master_of(large))
    assert cache.get("a") is None
    assert cache.nbytes == 0


def test_renders_get_a_view_that_cannot_change_the_master(large: bytes) -> None:
    master = master_of(large, size=(2400, 1800))
    view = master.pixels(master.opened, None)
    view.paste((255, 0, 0), (0, 0, 10, 10))
    assert view.getpixel((0, 0)) == (255, 0, 0)
    assert master.image.getpixel((0, 0)) == (0, 0, 0)


def test_a_master_smaller_than_needed_is_refused(large: bytes) -> None:
    master = master_of(large, size=(600, 450))
    with pytest.raises(MasterTooSmallError):
        master.pixels(master.opened, (1200, 900))


# --- rendering from a master --------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{width}x0/filters:format(png)", id=f"srcset-{width}")
        for width in (320, 640, 960, 1180)
    ]
    + [
        pytest.param("300x200/filters:format(png)", id="crop"),
        pytest.param("fit-in/800x600/filters:format(png)", id="fit-in"),
        pytest.param("300x300/smart/filters:format(png)", id="smart-no-detectors"),
        pytest.param("100x100:900x700/200x0/filters:format(png)", id="manual-crop"),
        pytest.param("-200x-200/filters:format(png):grayscale()", id="flip-and-filter"),
        pytest.param("500x0/filters:format(webp):quality(90)", id="webp"),
        pytest.param("meta/300x200", id="meta"),
    ],
)
def test_sizes_from_a_master_match_direct_renders(large: bytes, path: str) -> None:
    cached = renderer(master_size=1000)
    request = url.parse(f"/unsafe/{path}/x.jpg")
    direct = renderer(master_cache_bytes=0).render(large, request)
    cached.render(large, url.parse("/unsafe/200x0/x.jpg"), master_key="x.jpg")
    assert cached.masters is not None
    master = cached.masters.get("x.jpg")
    assert master is not None
    assert master.image.size == (1200, 900)  # the DCT scale keeping 1000 px on the long side
    rendered = cached.render_master(master, request)
    assert rendered is not None
    assert (rendered.content_type, rendered.width, rendered.height) == (
        direct.content_type,
        direct.width,
        direct.height,
    )
    if direct.content_type == "application/json":
        assert rendered.data == direct.data
    else:
        assert psnr(rendered.data, direct.data) >= MIN_PSNR


def test_rotated_png_and_palette_sources_render_from_masters() -> None:
    cached = renderer(master_size=200)
    rotated = phone_jpeg((800, 600), orientation=6)
    buffer = io.BytesIO()
    Image.new("P", (500, 300), 3).save(buffer, "PNG")
    for data, path in ((rotated, "90x0/filters:format(png)"), (buffer.getvalue(), "50x0")):
        request = url.parse(f"/unsafe/{path}/y.img")
        direct = renderer(master_cache_bytes=0).render(data, request)
        cached.render(data, url.parse("/unsafe/40x0/y.img"), master_key=path)
        assert cached.masters is not None
        master = cached.masters.get(path)
        assert master is not None
        rendered = cached.render_master(master, request)
        assert rendered is not None
        assert (rendered.width, rendered.height) == (direct.width, direct.height)
        assert psnr(rendered.data, direct.data) >= MIN_PSNR


def test_larger_sizes_than_the_master_render_from_the_source(large: bytes) -> None:
    cached = renderer(master_size=500)
    cached.render(large, url.parse("/unsafe/100x0/x.jpg"), master_key="x.jpg")
    assert cached.masters is not None
    master = cached.masters.get("x.jpg")
    assert master is not None
    assert master.image.size == (600, 450)
    assert cached.render_master(master, url.parse("/unsafe/1000x0/x.jpg")) is None


def solid_jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def render_stamped(cache: Renderer, data: bytes, path: str, stamp: SourceStamp) -> bytes:
    token = SOURCE_STAMP.set(stamp)
    try:
        return cache.render(data, url.parse(f"/unsafe/{path}/x.jpg"), master_key="x.jpg").data
    finally:
        SOURCE_STAMP.reset(token)


def test_a_master_carries_its_sources_stamp_and_can_be_discarded() -> None:
    cached = renderer(master_size=200)
    render_stamped(cached, solid_jpeg("red"), "100x0", SourceStamp(123.0, "v1"))
    assert cached.masters is not None
    master = cached.masters.peek("x.jpg")
    assert master is not None
    assert (master.loaded_at, master.version) == (123.0, "v1")
    cached.masters.discard("x.jpg")
    assert cached.masters.peek("x.jpg") is None


def test_a_render_from_new_bytes_never_reuses_a_master_of_another_version() -> None:
    cached = renderer(master_size=200)
    render_stamped(cached, solid_jpeg("red"), "100x0", SourceStamp(1.0, "v1"))
    # Smart renders decode the bytes even with a master cached; here the bytes are new.
    body = render_stamped(cached, solid_jpeg("blue"), "90x0/smart", SourceStamp(2.0, "v2"))
    red, _, blue = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert blue > red


def test_animations_are_not_kept(large: bytes) -> None:
    frames = [Image.new("RGB", (60, 40), color) for color in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    cached = renderer()
    cached.render(buffer.getvalue(), url.parse("/unsafe/30x20/a.gif"), master_key="a.gif")
    assert cached.masters is not None
    assert cached.masters.get("a.gif") is None


# --- through the pipeline ------------------------------------------------------------------


def app_config(**imaging: Any) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": "tests.fakes:CountingLoader", "settings": {"delay": 0.05}},
            "imaging": {"detectors": [], **imaging},
        },
        env={},
    )


async def test_srcset_sizes_fetch_and_decode_the_source_once(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(app_config(master_size=300)))
    widths = (120, 200, 250, 80, 160)
    responses = await asyncio.gather(
        *(client.get(f"/unsafe/{width}x0/astronaut.jpg") for width in widths)
    )
    assert [r.status for r in responses] == [200] * len(widths)
    for width, response in zip(widths, responses, strict=True):
        assert Image.open(io.BytesIO(await response.read())).width == width
    assert CountingLoader.instances[-1].loads == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'thumbor_py_master_cache_total{outcome="hit"}' in metrics
    assert 'thumbor_py_master_cache_total{outcome="store"}' in metrics


async def test_without_the_cache_every_size_fetches_the_source(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(app_config(master_cache_bytes=0)))
    for width in (120, 200):
        assert (await client.get(f"/unsafe/{width}x0/astronaut.jpg")).status == 200
    assert CountingLoader.instances[-1].loads == 2
