"""One contract for every image-record store: the MongoDB double, the bucket (moto's S3
server) and, when THUMBOR_PY_TEST_MONGODB_URI is set, a real MongoDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import MONGODB_URI, REAL_MONGODB
from tests.repository.records_collection import RecordsCollection
from thumbor_py.repository.bucket_records import BucketRecords
from thumbor_py.repository.originals import S3OriginalStorage
from thumbor_py.repository.records import ImageRecord, ImageRecords, RecordStore
from thumbor_py.s3client import S3Settings

BACKENDS = [
    "memory",
    "bucket",
    REAL_MONGODB,
]


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, bucket: str, s3_endpoint: str
) -> AsyncIterator[ImageRecords]:
    if request.param == "memory":
        memory = RecordStore(RecordsCollection())
        await memory.start()
        yield memory
        return
    if request.param == "bucket":
        storage = S3OriginalStorage(S3Settings(bucket=bucket, endpoint_url=s3_endpoint))
        await storage.start()
        yield BucketRecords(storage)
        await storage.aclose()
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    collection = client["thumbor_py_test"][f"images_{uuid.uuid4().hex}"]
    real = RecordStore(collection)  # type: ignore[arg-type]
    await real.start()
    try:
        yield real
    finally:
        await collection.drop()
        await client.close()


def record(n: int, tenant: str = "miluv", **fields: Any) -> ImageRecord:
    digest = f"{n:064x}"
    values: dict[str, Any] = {
        "id": digest,
        "tenant": tenant,
        "key": f"originals/{digest}.jpg",
        "source": f"originals/{digest}.jpg",
        "bytes": 100 + n,
        "width": 10,
        "height": 20,
        "format": "JPEG",
        "content_type": "image/jpeg",
        "sha256": digest,
        **fields,
    }
    return ImageRecord(**values)


async def test_add_get_duplicate_delete(store: ImageRecords) -> None:
    first = record(1, owner="ana", tags=("a", "b"), focal_point=(0.25, 0.75), title="T")
    assert await store.add(first) == (first, True)
    again, created = await store.add(record(1, owner="bo"))
    assert not created
    assert again.owner == "ana"
    got = await store.get("miluv", first.id)
    assert got is not None
    assert (got.tags, got.focal_point, got.title) == (("a", "b"), (0.25, 0.75), "T")
    assert got.created_at.replace(microsecond=0) == first.created_at.replace(microsecond=0)
    assert await store.get("lovia", first.id) is None  # another tenant's
    assert await store.get("miluv", "nope") is None
    await store.delete("miluv", first.id)
    assert await store.get("miluv", first.id) is None
    await store.delete("miluv", first.id)  # nothing there: no error


async def test_pages_by_owner_and_tag(store: ImageRecords) -> None:
    for n in range(7):
        await store.add(record(n, owner="ana" if n % 2 else "bo", tags=("all", f"t{n % 3}")))
    await store.add(record(99, tenant="lovia", owner="ana"))
    seen, cursor = [], None
    while True:
        page, cursor = await store.page("miluv", owner="ana", after=cursor, limit=2)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == [f"{n:064x}" for n in (1, 3, 5)]
    tagged, nxt = await store.page("miluv", tag="t0", limit=10)
    assert ([r.id for r in tagged], nxt) == ([f"{n:064x}" for n in (0, 3, 6)], None)
    assert len((await store.page("miluv", limit=100))[0]) == 7
    keys = await store.all_keys("lovia")
    assert keys == [(f"{99:064x}", f"originals/{99:064x}.jpg")]


async def test_put_inserts_then_replaces_by_id(store: ImageRecords) -> None:
    uuid_id = "ab" * 16  # an upload-API original: its own id, the content hash apart
    first = record(5, id=uuid_id, key=f"originals/{uuid_id}/cat.jpg", owner="ana")
    await store.put(first)
    got = await store.get("miluv", uuid_id)
    assert got is not None
    assert (got.sha256, got.owner) == (f"{5:064x}", "ana")
    await store.put(record(6, id=uuid_id, key=first.key, owner="ana", width=99))
    got = await store.get("miluv", uuid_id)
    assert got is not None
    assert (got.sha256, got.width) == (f"{6:064x}", 99)
    await store.add(record(7))  # a registered one beside it
    page, cursor = await store.page("miluv", owner="ana", limit=10)
    assert ([r.id for r in page], cursor) == ([uuid_id], None)
    assert sorted(await store.all_keys("miluv")) == sorted(
        [(uuid_id, first.key), (f"{7:064x}", f"originals/{7:064x}.jpg")]
    )
    await store.delete("miluv", uuid_id)
    assert await store.get("miluv", uuid_id) is None
