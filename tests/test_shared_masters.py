"""Masters shared by the workers of one server: the shared folder itself, and two pipelines
(two workers' apps, in one process here) decoding each source once between them."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from loaders.file import FileLoader
from tests.test_decode_quality import phone_jpeg
from thumbor_py.app import create_app
from thumbor_py.assembly import build_renderer
from thumbor_py.config import Config
from thumbor_py.imaging.master import PixelSource
from thumbor_py.plugins import PluginContext, Source
from thumbor_py.shared_masters import FOLDER_ENV, SharedMasters


@pytest.fixture(scope="module")
def photo() -> bytes:
    return phone_jpeg((1600, 1200))  # 1.9 MP: worth sharing


def shared(folder: Path, **settings: Any) -> SharedMasters:
    options: dict[str, Any] = {"max_bytes": 10**9, "min_pixels": 1_000_000, "ttl": 60.0}
    return SharedMasters(folder, namespace="test", **(options | settings))


def decoded(data: bytes, identity: str = "a.jpg", **source: Any) -> PixelSource:
    config = Config.from_mapping({"security": {"allow_unsafe": True}}, env={})
    return build_renderer(config.imaging, detectors=[]).with_master(
        PixelSource(identity, data, **source)
    )


# --- the shared folder ------------------------------------------------------------------------


def test_a_published_master_comes_back_whole(tmp_path: Path, photo: bytes) -> None:
    store = shared(tmp_path)
    source = decoded(photo, loaded_at=123.5, version="v1")
    assert source.master is not None
    source.master.image.info["icc_profile"] = b"profile"
    assert store.publish(source)
    found = store.get("a.jpg")
    assert found is not None
    assert found.master is not None
    assert found.data == photo
    assert (found.loaded_at, found.version) == (123.5, "v1")
    master, original = found.master, source.master
    assert master.image.tobytes() == original.image.tobytes()
    assert (master.image.mode, master.image.size) == (original.image.mode, original.image.size)
    assert master.image.info["icc_profile"] == b"profile"
    assert master.scale == original.scale
    assert master.header.oriented_size == original.header.oriented_size
    assert master.header.format == "JPEG"
    assert store.get("b.jpg") is None


def test_one_claim_at_a_time_until_released_or_published(tmp_path: Path, photo: bytes) -> None:
    store = shared(tmp_path)
    first = store.claim("a.jpg")
    assert first is not None
    assert store.claim("a.jpg") is None  # a sibling decodes it
    assert store.peek("a.jpg") == (None, False)
    first.release()
    first.release()  # idempotent
    assert store.peek("a.jpg") == (None, True)
    again = store.claim("a.jpg")
    assert again is not None
    store.publish(decoded(photo))
    again.release()
    assert store.claim("a.jpg") is None  # published: nothing left to decode
    found, free = store.peek("a.jpg")
    assert found is not None
    assert free
    assert not list(tmp_path.glob("*.lock"))  # lock files do not pile up


def test_a_dead_writers_temporary_file_is_removed(tmp_path: Path, photo: bytes) -> None:
    left = tmp_path / "0123.4242.tmp"
    left.write_bytes(b"half an entry")
    os.utime(left, (time.time() - 3600, time.time() - 3600))
    fresh = tmp_path / "4567.4243.tmp"
    fresh.write_bytes(b"being written")
    shared(tmp_path).publish(decoded(photo))
    assert not left.exists()
    assert fresh.exists()


def test_small_sources_and_palette_masters_are_not_shared(tmp_path: Path) -> None:
    store = shared(tmp_path)
    assert not store.publish(decoded(phone_jpeg((800, 600))))  # under a megapixel
    buffer = io.BytesIO()
    Image.new("P", (1200, 1000)).save(buffer, "PNG")
    assert not store.publish(decoded(buffer.getvalue(), "p.png"))
    assert not list(tmp_path.glob("*.master"))


def test_the_folder_keeps_its_byte_budget_oldest_out(tmp_path: Path, photo: bytes) -> None:
    source = decoded(photo)
    store = shared(tmp_path)
    store.publish(source)
    one = next(tmp_path.glob("*.master")).stat().st_size
    store = shared(tmp_path, max_bytes=2 * one + 100)
    for name in ("b.jpg", "c.jpg"):
        time.sleep(0.01)  # distinct modification times
        assert store.publish(decoded(photo, name))
    assert store.get("a.jpg") is None
    assert store.get("b.jpg") is not None
    assert store.get("c.jpg") is not None
    assert not shared(tmp_path, max_bytes=one - 1).publish(decoded(photo, "d.jpg"))


def test_expired_and_torn_entries_are_absent(tmp_path: Path, photo: bytes) -> None:
    store = shared(tmp_path, ttl=0.05)
    store.publish(decoded(photo))
    time.sleep(0.1)
    assert store.get("a.jpg") is None
    store = shared(tmp_path)
    store.publish(decoded(photo))
    entry = next(tmp_path.glob("*.master"))
    entry.write_bytes(entry.read_bytes()[:100])
    assert store.get("a.jpg") is None
    assert not entry.exists()


def test_namespaces_do_not_mix(tmp_path: Path, photo: bytes) -> None:
    shared(tmp_path).publish(decoded(photo))
    other = SharedMasters(tmp_path, namespace="other", max_bytes=10**9, min_pixels=1, ttl=60)
    assert other.get("a.jpg") is None


# --- two workers' pipelines ---------------------------------------------------------------


class CountingFileLoader(FileLoader):
    """The file loader, counting its reads (on the render thread or not)."""

    reads: ClassVar[int] = 0

    def __init__(self, settings: FileLoader.Settings, context: PluginContext) -> None:
        super().__init__(settings, context)

    def read_blocking(self, source: str) -> Source:
        CountingFileLoader.reads += 1
        return super().read_blocking(source)


def app_config(root: Path, **imaging: Any) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {
                "use": "tests.test_shared_masters:CountingFileLoader",
                "settings": {"root": str(root)},
            },
            "imaging": {"detectors": [], **imaging},
        },
        env={},
    )


@pytest.fixture
def images(tmp_path: Path, photo: bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "photo.jpg").write_bytes(photo)
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv(FOLDER_ENV, str(tmp_path / "shared"))
    CountingFileLoader.reads = 0
    return tmp_path / "images"


async def width_of(client: Any, width: int) -> int:
    response = await client.get(f"/unsafe/{width}x0/photo.jpg")
    assert response.status == 200
    return Image.open(io.BytesIO(await response.read())).width


async def test_the_sizes_of_one_source_decode_it_once_across_workers(
    aiohttp_client: Any, images: Path
) -> None:
    first = await aiohttp_client(create_app(app_config(images)))
    second = await aiohttp_client(create_app(app_config(images)))
    assert await width_of(first, 320) == 320
    assert await width_of(second, 640) == 640
    assert await width_of(second, 960) == 960
    assert await width_of(first, 200) == 200
    assert CountingFileLoader.reads == 1  # one read and one decode for both workers
    metrics = await (await second.get("/metrics")).text()
    assert 'thumbor_py_master_cache_total{outcome="shared"}' in metrics


def sibling(images: Path) -> SharedMasters:
    """The shared folder as a sibling worker of an app on ``app_config(images)`` sees it."""
    config = app_config(images)
    return SharedMasters(
        Path(os.environ[FOLDER_ENV]),
        namespace=repr((config.loader, config.routes)),
        max_bytes=10**9,
        min_pixels=1,
        ttl=60,
    )


async def test_a_worker_waits_for_the_siblings_decode(aiohttp_client: Any, images: Path) -> None:
    client = await aiohttp_client(create_app(app_config(images)))
    store = sibling(images)
    claim = await asyncio.to_thread(store.claim, "photo.jpg")  # a sibling decodes it
    assert claim is not None
    request = asyncio.ensure_future(width_of(client, 300))
    await asyncio.sleep(0.2)
    assert not request.done()
    data = (images / "photo.jpg").read_bytes()
    await asyncio.to_thread(store.publish, decoded(data, "photo.jpg"))
    await asyncio.to_thread(claim.release)
    assert await asyncio.wait_for(request, 10) == 300
    assert CountingFileLoader.reads == 0  # the sibling's decode served it


async def test_a_sibling_that_gives_up_leaves_the_decode_to_the_waiter(
    aiohttp_client: Any, images: Path
) -> None:
    client = await aiohttp_client(create_app(app_config(images)))
    claim = await asyncio.to_thread(sibling(images).claim, "photo.jpg")
    assert claim is not None
    request = asyncio.ensure_future(width_of(client, 300))
    await asyncio.sleep(0.1)
    await asyncio.to_thread(claim.release)  # failed or died: nothing published
    assert await asyncio.wait_for(request, 10) == 300
    assert CountingFileLoader.reads == 1


async def test_an_empty_master_cache_is_still_filled(aiohttp_client: Any, images: Path) -> None:
    client = await aiohttp_client(create_app(app_config(images, shared_master_bytes=0)))
    for width in (320, 640, 100):
        assert await width_of(client, width) == width
    assert CountingFileLoader.reads == 1


async def test_without_a_master_cache_every_size_reads_the_file(
    aiohttp_client: Any, images: Path
) -> None:
    client = await aiohttp_client(create_app(app_config(images, master_cache_bytes=0)))
    for width in (320, 640):
        assert await width_of(client, width) == width
    assert CountingFileLoader.reads == 2
