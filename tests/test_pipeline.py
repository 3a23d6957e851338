"""The pipeline's seams: one render and one store per shared request, admission slots that
last as long as their render threads, and parts given to create_app used as they are."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import SAMPLES
from thumbor_py.app import create_app
from thumbor_py.assembly import guard
from thumbor_py.config import Config
from thumbor_py.errors import OverloadedError
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.transform import Renderer
from thumbor_py.pipeline import Pipeline, StoragePolicy
from thumbor_py.plugins import Source, StoredResult
from thumbor_py.url import ImageRequest, parse


class CountingStorage:
    """A result storage in memory that counts its writes."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[StoredResult, bytes]] = {}
        self.puts = 0

    async def get(self, key: str) -> StoredResult | None:
        item = self.items.get(key)
        return None if item is None else item[0]

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        item = self.items.get(key)
        return None if item is None else item[1]

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        self.puts += 1
        self.items[key] = (result, data)

    async def delete(self, key: str) -> None:
        self.items.pop(key, None)

    async def purge(self, source: str) -> int:
        keys = [key for key, (result, _) in self.items.items() if result.source == source]
        for key in keys:
            del self.items[key]
        return len(keys)


class SampleLoader:
    """Serves sample files after a short wait, so that requests overlap."""

    def __init__(self, delay: float = 0.05) -> None:
        self.loads = 0
        self._delay = delay

    async def load(self, source: str) -> Source:
        self.loads += 1
        await asyncio.sleep(self._delay)
        return Source(data=await asyncio.to_thread((SAMPLES / source).read_bytes))


class GatedRenderer(Renderer):
    """Counts renders; each waits for ``gate`` before it renders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.renders = 0

    def render(self, source: PixelSource, request: ImageRequest, *args: Any, **kw: Any) -> Rendered:
        self.renders += 1
        self.started.set()
        self.gate.wait(timeout=10)
        return super().render(source, request, *args, **kw)


def config(**imaging: Any) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "imaging": {"detectors": [], **imaging},
            "result_storage": {"timeout": 5.0, "store_unsafe": True},
        },
        env={},
    )


def gated_renderer(cfg: Config) -> GatedRenderer:
    return GatedRenderer(cfg.imaging, build_registry())


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


async def test_identical_requests_render_once_and_store_once(
    executor: ThreadPoolExecutor,
) -> None:
    cfg = config()
    storage = CountingStorage()
    renderer = gated_renderer(cfg)
    pipeline = Pipeline(
        loader=SampleLoader(),
        renderer=renderer,
        executor=executor,
        max_pending=4,
        storage=guard(cfg, storage),
        policy=StoragePolicy(store_unsafe=True),
    )
    path = "/unsafe/40x30/coffee.jpg"
    outcomes = await asyncio.gather(
        *(pipeline.process(parse(path), signed_path=path) for _ in range(20))
    )
    assert len({outcome.etag for outcome in outcomes}) == 1
    assert all(outcome.data for outcome in outcomes)
    assert await pipeline.drain(5.0) == 0
    assert renderer.renders == 1
    assert storage.puts == 1
    again = await pipeline.process(parse(path), signed_path=path)
    assert again.from_storage
    assert (renderer.renders, storage.puts) == (1, 1)


async def test_the_slot_is_held_until_the_render_thread_finishes(
    executor: ThreadPoolExecutor,
) -> None:
    renderer = gated_renderer(config(master_cache_bytes=0))
    renderer.gate.clear()
    pipeline = Pipeline(
        loader=SampleLoader(delay=0),
        renderer=renderer,
        executor=executor,
        max_pending=1,
        deadline=1.0,
    )
    path = "/unsafe/10x10/coffee.jpg"
    with pytest.raises(OverloadedError):
        await pipeline.process(parse(path), signed_path=path)
    assert renderer.started.is_set()
    assert pipeline.pending == 1, "the render thread is still busy: its slot is not free"
    with pytest.raises(OverloadedError, match="queue is full"):
        await pipeline.process(parse("/unsafe/20x20/coffee.jpg"), signed_path="other")
    renderer.gate.set()
    for _ in range(200):
        if pipeline.pending == 0:
            break
        await asyncio.sleep(0.01)
    assert pipeline.pending == 0
    assert (await pipeline.process(parse(path), signed_path=path)).data


async def test_given_parts_are_used_as_they_are(aiohttp_client: Any) -> None:
    storage = CountingStorage()
    loader = SampleLoader(delay=0)
    client = await aiohttp_client(
        create_app(config(), loader=loader, result_storage=storage, detectors=())
    )
    response = await client.get("/unsafe/30x20/coffee.jpg")
    assert response.status == 200
    assert loader.loads == 1
    for _ in range(100):
        if storage.puts:
            break
        await asyncio.sleep(0.01)
    assert storage.puts == 1
