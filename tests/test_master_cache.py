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
from thumbor_py.assembly import build_master_cache, build_renderer
from thumbor_py.config import Config
from thumbor_py.imaging import formats
from thumbor_py.imaging.master import Master, MasterCache, PixelSource
from thumbor_py.imaging.transform import Renderer


def renderer(**imaging: Any) -> Renderer:
    config = Config.from_mapping(
        {"security": {"allow_unsafe": True}, "imaging": {"detectors": [], **imaging}}
    )
    return build_renderer(config.imaging)


@pytest.fixture(scope="module")
def large() -> bytes:
    return phone_jpeg((2400, 1800))


def master_of(data: bytes, size: tuple[int, int] = (40, 30), nbytes: int = 100) -> Master:
    opened = formats.open_image(data, max_pixels=10**9, respect_orientation=True)
    return Master(Image.new("RGB", size), opened, 1, nbytes, time.monotonic())


def cached_source(identity: str, data: bytes, **master: Any) -> PixelSource:
    """A source as the cache keeps it: a few bytes of data and a master of ``data``."""
    return PixelSource(identity, b"0123456789", master_of(data, **master))


# --- the cache itself -------------------------------------------------------------------


def test_is_off_when_its_budget_is_zero() -> None:
    config = app_config(master_cache_bytes=0)
    assert build_master_cache(config.imaging) is None
    assert build_master_cache(app_config().imaging) is not None


def test_evicts_least_recently_used_past_its_byte_budget(large: bytes) -> None:
    cache = MasterCache(max_bytes=250, ttl=60)
    for key in ("a", "b"):
        cache.put(cached_source(key, large))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put(cached_source("c", large))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.nbytes == 220  # master pixels and source bytes count
    assert len(cache) == 2
    assert cache.evictions == 1


def test_counts_the_source_bytes_in_its_budget(large: bytes) -> None:
    cache = MasterCache(max_bytes=105, ttl=60)
    assert not cache.put(cached_source("a", large))  # 100 pixel bytes + 10 source bytes
    assert cache.put(PixelSource("b", b"01234", master_of(large)))
    assert cache.nbytes == 105


def test_refuses_a_master_over_the_whole_budget(large: bytes) -> None:
    cache = MasterCache(max_bytes=50, ttl=60)
    assert not cache.put(cached_source("a", large, nbytes=51))
    assert cache.get("a") is None


def test_keeps_only_sources_with_a_master(large: bytes) -> None:
    cache = MasterCache(max_bytes=10**9, ttl=60)
    assert not cache.put(PixelSource("a", large))
    assert cache.get("a") is None


def test_forgets_masters_older_than_the_ttl(large: bytes) -> None:
    cache = MasterCache(max_bytes=1000, ttl=-1)
    cache.put(cached_source("a", large))
    assert cache.get("a") is None
    assert cache.nbytes == 0


def test_renders_get_a_view_that_cannot_change_the_master(large: bytes) -> None:
    master = master_of(large, size=(2400, 1800))
    view = master.pixels(master.opened, None)
    view.paste((255, 0, 0), (0, 0, 10, 10))
    assert view.getpixel((0, 0)) == (255, 0, 0)
    assert master.image.getpixel((0, 0)) == (0, 0, 0)


def test_a_master_smaller_than_needed_does_not_cover(large: bytes) -> None:
    master = master_of(large, size=(600, 450))
    assert not master.covers((1200, 900))
    assert master.covers((600, 450))


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
    direct = renderer(master_cache_bytes=0).render(PixelSource("x.jpg", large), request)
    source = cached.with_master(PixelSource("x.jpg", large))
    master = source.master
    assert master is not None
    assert master.image.size == (1200, 900)  # the DCT scale keeping 1000 px on the long side
    rendered = cached.render(source, request)
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
        direct = renderer(master_cache_bytes=0).render(PixelSource(path, data), request)
        source = cached.with_master(PixelSource(path, data))
        assert source.master is not None
        rendered = cached.render(source, request)
        assert (rendered.width, rendered.height) == (direct.width, direct.height)
        assert psnr(rendered.data, direct.data) >= MIN_PSNR


def test_larger_sizes_than_the_master_render_from_the_source(large: bytes) -> None:
    cached = renderer(master_size=500)
    source = cached.with_master(PixelSource("x.jpg", large))
    assert source.master is not None
    assert source.master.image.size == (600, 450)
    request = url.parse("/unsafe/1000x0/x.jpg")
    rendered = cached.render(source, request)  # the same render falls back to the bytes
    direct = renderer(master_cache_bytes=0).render(PixelSource("x.jpg", large), request)
    assert (rendered.width, rendered.height) == (1000, 750)
    assert rendered.data == direct.data


def solid_jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_a_master_carries_its_sources_stamp_and_can_be_discarded() -> None:
    cached = renderer(master_size=200)
    loaded = PixelSource("x.jpg", solid_jpeg("red"), loaded_at=123.0, version="v1")
    source = cached.with_master(loaded)
    cache = MasterCache(max_bytes=64 * 1024 * 1024, ttl=300)
    assert cache.put(source)
    kept = cache.get("x.jpg")
    assert kept is not None
    assert kept.master is not None
    assert (kept.loaded_at, kept.version) == (123.0, "v1")
    newer = cached.with_master(PixelSource("x.jpg", solid_jpeg("blue"), loaded_at=124.0))
    assert cache.put(newer)
    cache.discard(source)  # a stale copy's discard leaves the newer one in place
    assert cache.get("x.jpg") is newer
    cache.discard(newer)
    assert cache.get("x.jpg") is None
    assert cache.nbytes == 0


def test_a_render_from_new_bytes_never_reuses_a_master_of_another_version() -> None:
    cached = renderer(master_size=200)
    old = cached.with_master(PixelSource("x.jpg", solid_jpeg("red"), loaded_at=1.0, version="v1"))
    cache = MasterCache(max_bytes=64 * 1024 * 1024, ttl=300)
    assert cache.put(old)
    # Smart renders decode the bytes even with a master; here the bytes are new ones.
    new = PixelSource("x.jpg", solid_jpeg("blue"), loaded_at=2.0, version="v2")
    body = cached.render(new, url.parse("/unsafe/90x0/smart/x.jpg")).data
    red, _, blue = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert blue > red


def test_animations_are_not_kept(large: bytes) -> None:
    frames = [Image.new("RGB", (60, 40), color) for color in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    source = renderer().with_master(PixelSource("a.gif", buffer.getvalue()))
    assert source.master is None
    assert not MasterCache(max_bytes=10**9, ttl=60).put(source)


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
