"""Admission control: a bounded render queue per process answered 503 + Retry-After at once,
and per-request deadlines that drop renders nobody waits for any more."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import SAMPLES
from thumbor_py.config import Config
from thumbor_py.errors import OverloadedError
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.transform import Renderer
from thumbor_py.pipeline import Pipeline
from thumbor_py.plugins import Source
from thumbor_py.url import parse


class HeldLoader:
    """Serves sample files once ``release`` is set; counts the loads waiting for it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0
        self._arrived = asyncio.Condition()

    async def load(self, source: str) -> Source:
        async with self._arrived:
            self.waiting += 1
            self._arrived.notify_all()
        await self.release.wait()
        return Source(data=await asyncio.to_thread((SAMPLES / source).read_bytes))

    async def wait_for(self, count: int) -> None:
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.waiting >= count)


class CountingRenderer(Renderer):
    """A renderer that counts the renders it actually starts."""

    started = 0

    def render(self, *args: Any, **kwargs: Any) -> Any:
        CountingRenderer.started += 1
        return super().render(*args, **kwargs)


def make_pipeline(
    loader: object, executor: ThreadPoolExecutor, *, max_pending: int, deadline: float | None
) -> Pipeline:
    config = Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "imaging": {"master_cache_bytes": 0, "detectors": []},
        },
        env={},
    )
    return Pipeline(
        loader=loader,  # type: ignore[arg-type]
        renderer=CountingRenderer(config.imaging, build_registry()),
        executor=executor,
        max_pending=max_pending,
        deadline=deadline,
    )


@pytest.fixture
def executor() -> Any:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


async def process(pipeline: Pipeline, path: str) -> Any:
    return await pipeline.process(parse(path), signed_path=path)


async def test_a_full_queue_refuses_at_once_and_recovers(executor: ThreadPoolExecutor) -> None:
    loader = HeldLoader()
    pipeline = make_pipeline(loader, executor, max_pending=2, deadline=None)
    held = [
        asyncio.create_task(process(pipeline, f"/unsafe/{size}/coffee.jpg"))
        for size in ("10x10", "20x20")
    ]
    await loader.wait_for(2)
    with pytest.raises(OverloadedError) as refused:
        await process(pipeline, "/unsafe/30x30/coffee.jpg")
    assert refused.value.status == 503
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    assert loader.waiting == 2, "the refused request must not have started loading"
    loader.release.set()
    assert all(outcome.data for outcome in await asyncio.gather(*held))
    assert pipeline.pending == 0
    assert (await process(pipeline, "/unsafe/30x30/coffee.jpg")).data


async def test_identical_requests_share_one_slot(executor: ThreadPoolExecutor) -> None:
    loader = HeldLoader()
    pipeline = make_pipeline(loader, executor, max_pending=1, deadline=None)
    same = [asyncio.create_task(process(pipeline, "/unsafe/10x10/coffee.jpg")) for _ in range(5)]
    await loader.wait_for(1)
    loader.release.set()
    assert len({outcome.etag for outcome in await asyncio.gather(*same)}) == 1


async def test_a_request_past_its_deadline_is_503(executor: ThreadPoolExecutor) -> None:
    loader = HeldLoader()  # never released: the source never arrives
    pipeline = make_pipeline(loader, executor, max_pending=4, deadline=0.05)
    with pytest.raises(OverloadedError) as late:
        await process(pipeline, "/unsafe/10x10/coffee.jpg")
    assert "0.05" in late.value.reason
    assert pipeline.pending == 0


async def test_a_queued_render_past_its_deadline_never_starts(
    executor: ThreadPoolExecutor,
) -> None:
    loader = HeldLoader()
    loader.release.set()
    pipeline = make_pipeline(loader, executor, max_pending=4, deadline=0.05)
    blocker = threading.Event()
    executor.submit(blocker.wait)  # the only render thread is busy
    CountingRenderer.started = 0
    with pytest.raises(OverloadedError):
        await process(pipeline, "/unsafe/10x10/coffee.jpg")
    blocker.set()
    await asyncio.sleep(0)
    await asyncio.wrap_future(executor.submit(lambda: None))  # the queue has drained
    assert CountingRenderer.started == 0


async def test_overloaded_is_answered_with_retry_after(aiohttp_client: Any) -> None:
    from thumbor_py.app import create_app

    config = Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "server": {"render_threads": 1, "render_queue": 1},  # two renders admitted
            "imaging": {"detectors": [], "master_cache_bytes": 0},
        },
        env={},
    )
    loader = HeldLoader()
    client = await aiohttp_client(create_app(config, loader=loader))
    held = [
        asyncio.create_task(client.get(f"/unsafe/{size}/coffee.jpg")) for size in ("10x10", "20x20")
    ]
    await loader.wait_for(2)
    response = await client.get("/unsafe/30x30/coffee.jpg")  # every slot is taken
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert (await client.get("/healthcheck")).status == 200
    loader.release.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
