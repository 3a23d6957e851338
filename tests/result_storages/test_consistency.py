"""Object and metadata stay consistent when one of the two writes fails: S3 on moto's server,
MongoDB as the in-memory double made to fail on demand. Every object can be found and purged."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
from pymongo.errors import AutoReconnect

from result_storages.composed import ComposedResultStorage
from result_storages.mongodb import MongoMetadataStore
from result_storages.s3 import S3BlobStore
from tests.result_storages.memory_collection import MemoryCollection
from tests.result_storages.test_mongodb import variant
from thumbor_py.errors import StorageUnavailableError

BODY = b"\xff\xd8rendered"


class FailingCollection(MemoryCollection):
    """The in-memory double, failing the named methods like a MongoDB that went away."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    def _maybe_fail(self, name: str) -> None:
        if name in self.failing:
            raise AutoReconnect(f"connection closed (while {name}); topology: {'x' * 500}")

    async def find_one(self, filter: Any) -> Any:
        self._maybe_fail("find_one")
        return await super().find_one(filter)

    async def replace_one(self, filter: Any, replacement: Any, upsert: bool = False) -> None:
        self._maybe_fail("replace_one")
        await super().replace_one(filter, replacement, upsert)

    async def update_one(self, filter: Any, update: Any) -> Any:
        self._maybe_fail("update_one")
        return await super().update_one(filter, update)

    async def delete_one(self, filter: Any) -> None:
        self._maybe_fail("delete_one")
        await super().delete_one(filter)

    def find(self, filter: Any, projection: Any = None) -> Any:
        self._maybe_fail("find")
        return super().find(filter, projection)


class FlakyBlobs(S3BlobStore):
    """Real S3 calls; an upload can fail before or after the object lands, deletes can fail."""

    put_fails: Literal["before", "after"] | None = None
    delete_fails = False
    upload_gate: asyncio.Event | None = None
    upload_started = asyncio.Event()

    async def put(self, object_key: str, data: bytes, content_type: str, max_age: int) -> None:
        if self.put_fails == "before":
            raise StorageUnavailableError("S3: connection refused")
        if self.upload_gate is not None:
            self.upload_started.set()
            await self.upload_gate.wait()
        await super().put(object_key, data, content_type, max_age)
        if self.put_fails == "after":
            raise StorageUnavailableError("S3: read timeout (the object landed)")

    async def delete(self, object_key: str) -> None:
        if self.delete_fails:
            raise StorageUnavailableError("S3: connection reset")
        await super().delete(object_key)


class World:
    """A storage over a fresh bucket and a failing collection, and ways to inspect both."""

    def __init__(self, endpoint: str) -> None:
        self.bucket = f"c-{uuid.uuid4().hex[:12]}"
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.client.create_bucket(Bucket=self.bucket)
        self.collection = FailingCollection()
        self.blobs = FlakyBlobs(self.client, self.bucket, None)
        self.storage = ComposedResultStorage(self.blobs, MongoMetadataStore(self.collection))

    def objects(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listed.get("Contents", ())]

    def orphans(self) -> list[str]:
        """Objects no document points to (purge must still find them by their folder)."""
        documented = {doc.get("object_key") for doc in self.collection.documents.values()}
        return [key for key in self.objects() if key not in documented]

    def heal(self) -> None:
        self.collection.failing.clear()
        self.blobs.put_fails = None
        self.blobs.delete_fails = False

    async def purge_all(self, *sources: str) -> None:
        self.heal()
        for source in sources:
            await self.storage.purge(source)
        assert self.objects() == [], "an object survived purge: orphaned"
        assert self.collection.documents == {}


@pytest.fixture
def world(s3_endpoint: str) -> Iterator[World]:
    made = World(s3_endpoint)
    yield made
    made.client.close()


async def test_upload_ok_then_metadata_fails(world: World) -> None:
    world.collection.failing.add("update_one")
    with pytest.raises(StorageUnavailableError):
        await world.storage.put("k1", variant(), BODY)
    assert len(world.objects()) == 1
    assert world.orphans() == []  # the pending document points at it
    world.heal()
    assert await world.storage.get("k1") is None  # pending is never a hit
    await world.purge_all("photos/cat.jpg")


async def test_metadata_down_before_the_upload_uploads_nothing(world: World) -> None:
    world.collection.failing.add("replace_one")
    with pytest.raises(StorageUnavailableError):
        await world.storage.put("k1", variant(), BODY)
    assert world.objects() == []
    await world.purge_all("photos/cat.jpg")


@pytest.mark.parametrize("when", ["before", "after"])
async def test_metadata_ok_then_upload_fails(
    world: World, when: Literal["before", "after"]
) -> None:
    world.blobs.put_fails = when
    with pytest.raises(StorageUnavailableError):
        await world.storage.put("k1", variant(), BODY)
    assert len(world.objects()) == (1 if when == "after" else 0)
    assert world.orphans() == []
    assert await world.storage.get("k1") is None
    await world.purge_all("photos/cat.jpg")


async def test_a_later_write_completes_a_pending_variant(world: World) -> None:
    world.collection.failing.add("update_one")
    with pytest.raises(StorageUnavailableError):
        await world.storage.put("k1", variant(), BODY)
    world.heal()
    await world.storage.put("k1", variant(), BODY)
    hit = await world.storage.get("k1")
    assert hit is not None
    assert await world.storage.read("k1", hit) == BODY
    assert len(world.objects()) == 1


@pytest.mark.parametrize("failing", ["find", "delete_one"])
async def test_metadata_outage_during_purge(world: World, failing: str) -> None:
    for index, content_type in enumerate(("image/jpeg", "image/webp", "image/png")):
        await world.storage.put(f"k{index}", variant(content_type=content_type), BODY)
    world.collection.failing.add(failing)
    with pytest.raises(StorageUnavailableError):
        await world.storage.purge("photos/cat.jpg")
    assert world.orphans() == []  # documents go before their objects
    await world.purge_all("photos/cat.jpg")


async def test_s3_outage_during_purge(world: World) -> None:
    await world.storage.put("k1", variant(), BODY)
    await world.storage.put("k2", variant(content_type="image/webp"), BODY)
    world.blobs.delete_fails = True
    with pytest.raises(StorageUnavailableError):
        await world.storage.purge("photos/cat.jpg")
    assert await world.storage.get("k1") is None  # no document points at a doomed object
    assert len(world.orphans()) >= 1  # left for the next purge, which lists the folder
    await world.purge_all("photos/cat.jpg")


async def test_objects_whose_documents_vanished_are_purged(world: World) -> None:
    await world.storage.put("k1", variant(), BODY)
    await world.storage.put("k2", variant(source="photos/cat.jpg/more.jpg"), BODY)
    world.collection.documents.clear()  # e.g. MongoDB's TTL monitor, or a lost database
    assert len(world.orphans()) == 2
    assert await world.storage.purge("photos/cat.jpg") == 1
    assert world.objects() == [world.objects()[0]]
    assert world.objects()[0].startswith("results/photos/cat.jpg/more.jpg/")
    await world.purge_all("photos/cat.jpg/more.jpg")


async def test_a_purge_during_the_upload_leaves_no_object(world: World) -> None:
    world.blobs.upload_gate = asyncio.Event()
    world.blobs.upload_started = asyncio.Event()
    writing = asyncio.create_task(world.storage.put("k1", variant(), BODY))
    await world.blobs.upload_started.wait()  # the pending document is written by now
    assert await world.storage.purge("photos/cat.jpg") == 1
    world.blobs.upload_gate.set()
    await writing
    assert world.objects() == []
    assert world.collection.documents == {}


async def test_random_failures_leave_no_orphans(world: World) -> None:
    sources = [f"img/{n}.jpg" for n in range(6)]
    plans: list[tuple[str | None, Literal["before", "after"] | None]] = [
        (None, None),
        ("update_one", None),
        ("replace_one", None),
        (None, "before"),
        (None, "after"),
        ("update_one", "after"),
    ]
    for number, (source, (failing, put_fails)) in enumerate(zip(sources, plans, strict=True)):
        world.heal()
        world.collection.failing |= {failing} if failing else set()
        world.blobs.put_fails = put_fails
        with contextlib.suppress(StorageUnavailableError):
            await world.storage.put(f"key{number}", variant(source=source), BODY)
    world.heal()
    assert world.orphans() == []
    await world.purge_all(*sources)
