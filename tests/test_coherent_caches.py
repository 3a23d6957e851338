"""Through the app: a replaced original shows after a purge (any spelling) or after
``revalidate_after``, from the decoded-source cache and from the result storage alike, and a
render that raced a purge is not stored."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loaders.file import FileLoader
from thumbor_py.app import COHERENCE_KEY, create_app
from thumbor_py.config import Config
from thumbor_py.plugins import PluginContext, Source

TOKEN = "purge-token"
RED, BLUE = (220, 20, 20), (20, 20, 220)


def write_image(path: Path, color: tuple[int, int, int]) -> None:
    """Replace ``path`` the way a deploy does: write aside, rename over."""
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), color).save(buffer, "JPEG", quality=95)
    aside = path.with_suffix(".tmp")
    aside.write_bytes(buffer.getvalue())
    os.replace(aside, path)


def color_of(body: bytes) -> str:
    red, _, blue = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    return "red" if red > blue else "blue"


class SlowFileLoader:
    """The file loader, pausing ``delay`` seconds after it has read the bytes."""

    delay = 0.0

    Settings = FileLoader.Settings

    def __init__(self, settings: FileLoader.Settings, context: PluginContext) -> None:
        self._files = FileLoader(settings, context)

    def identity(self, source: str) -> str:
        return self._files.identity(source)

    async def load(self, source: str) -> Source:
        loaded = await self._files.load(source)
        await asyncio.sleep(SlowFileLoader.delay)
        return loaded


def config(tmp_path: Path, loader: str = "file", **imaging: Any) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": loader, "settings": {"root": str(tmp_path / "originals")}},
            "result_storage": {
                "use": "file",
                "store_unsafe": True,
                "settings": {"root": str(tmp_path / "results")},
            },
            "imaging": {"detectors": [], **imaging},
            "coherence": {"check_interval": 0.05},
            "admin": {"token": TOKEN},
        },
        env={},
    )


@pytest.fixture
def originals(tmp_path: Path) -> Path:
    folder = tmp_path / "originals"
    folder.mkdir()
    write_image(folder / "photo.jpg", RED)
    return folder


async def fetch(client: Any, path: str) -> tuple[str, str]:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return color_of(await response.read()), response.headers.get("X-Result-Storage", "miss")


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("photo.jpg", id="as-requested"),
        pytest.param("%2Fphoto.jpg", id="percent-encoded-slash"),
        pytest.param("./photo.jpg", id="dot"),
        pytest.param("a/../photo.jpg", id="dotdot"),
    ],
)
async def test_a_purge_by_any_spelling_shows_the_new_original_everywhere(
    aiohttp_client: Any, tmp_path: Path, originals: Path, spelling: str
) -> None:
    client = await aiohttp_client(create_app(config(tmp_path, revalidate_after=None)))
    for path in ("/unsafe/100x0/photo.jpg", "/unsafe/120x0/%2Fphoto.jpg"):
        assert (await fetch(client, path))[0] == "red"
    await asyncio.sleep(0.2)  # stored
    assert await fetch(client, "/unsafe/100x0/photo.jpg") == ("red", "hit")
    write_image(originals / "photo.jpg", BLUE)
    response = await client.delete(
        "/admin/results",
        params={"source": spelling},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status == 200
    assert (await response.json())["purged"] == 2  # both spellings' stored variants
    # Stored size, another spelling, and a size never asked: all from the new original.
    for path in ("/unsafe/100x0/photo.jpg", "/unsafe/120x0/%2Fphoto.jpg", "/unsafe/90x0/photo.jpg"):
        assert (await fetch(client, path)) == ("blue", "miss")
    metrics = await (await client.get("/metrics")).text()
    assert 'thumbor_py_coherence_total{outcome="purge"}' in metrics


async def test_without_purge_a_replaced_original_shows_once_revalidate_after_passed(
    aiohttp_client: Any, tmp_path: Path, originals: Path
) -> None:
    client = await aiohttp_client(create_app(config(tmp_path, revalidate_after=0.3)))
    assert (await fetch(client, "/unsafe/100x0/photo.jpg"))[0] == "red"
    await asyncio.sleep(0.1)
    assert await fetch(client, "/unsafe/100x0/photo.jpg") == ("red", "hit")
    write_image(originals / "photo.jpg", BLUE)
    await asyncio.sleep(0.35)
    assert (await fetch(client, "/unsafe/100x0/photo.jpg"))[0] == "blue"  # was stored
    assert (await fetch(client, "/unsafe/80x0/photo.jpg"))[0] == "blue"  # was a cached decode
    await asyncio.sleep(0.1)
    assert await fetch(client, "/unsafe/100x0/photo.jpg") == ("blue", "hit")


async def test_a_render_that_raced_a_purge_is_neither_served_after_it_nor_stored(
    aiohttp_client: Any, tmp_path: Path, originals: Path
) -> None:
    slow = config(tmp_path, "tests.test_coherent_caches:SlowFileLoader", revalidate_after=None)
    client = await aiohttp_client(create_app(slow))
    SlowFileLoader.delay = 0.4  # the purge lands after the old bytes were read
    leader = asyncio.ensure_future(fetch(client, "/unsafe/100x0/photo.jpg"))
    await asyncio.sleep(0.1)
    write_image(originals / "photo.jpg", BLUE)
    await client.app[COHERENCE_KEY].purge("photo.jpg", None)
    # Sent after the purge returned, while the old render still runs: it would join it.
    follower = asyncio.ensure_future(fetch(client, "/unsafe/100x0/photo.jpg"))
    SlowFileLoader.delay = 0.0
    assert await follower == ("blue", "miss")
    assert (await leader)[0] == "blue"  # its render was stale by the time it finished
    await asyncio.sleep(0.2)
    assert await fetch(client, "/unsafe/100x0/photo.jpg") == ("blue", "hit")
    assert await fetch(client, "/unsafe/70x0/photo.jpg") == ("blue", "miss")
