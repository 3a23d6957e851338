"""One contract, every result storage: files on disk, and S3 (moto server) + metadata double."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from result_storages.file import FileResultStorage
from result_storages.mongodb import MongoMetadataStore
from result_storages.s3 import ComposedResultStorage, S3BlobStore, object_key_for
from tests.result_storages.memory_collection import MemoryCollection
from tests.result_storages.test_mongodb import variant
from thumbor_py.plugins import PluginContext, ResultStorage

BODY = b"\xff\xd8rendered-bytes"


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(params=["file", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: str
) -> AsyncIterator[Any]:
    if request.param == "file":
        yield FileResultStorage(
            FileResultStorage.Settings(root=str(tmp_path)), PluginContext(max_source_bytes=1)
        )
        return
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    yield ComposedResultStorage(
        S3BlobStore(client, bucket, None), MongoMetadataStore(MemoryCollection())
    )


def test_every_storage_satisfies_the_protocol(tmp_path: Path) -> None:
    file_storage = FileResultStorage(
        FileResultStorage.Settings(root=str(tmp_path)), PluginContext(max_source_bytes=1)
    )
    assert isinstance(file_storage, ResultStorage)
    composed = ComposedResultStorage(
        S3BlobStore(None, "b", None), MongoMetadataStore(MemoryCollection())
    )
    assert isinstance(composed, ResultStorage)


async def test_miss_then_put_then_hit(storage: Any) -> None:
    assert await storage.get("k1") is None
    await storage.put("k1", variant(), BODY)
    hit = await storage.get("k1")
    assert hit is not None
    assert (hit.etag, hit.content_type, hit.width, hit.height) == ('"abc"', "image/jpeg", 300, 200)
    assert await storage.read("k1", hit) == BODY


async def test_purge_deletes_every_variant_of_a_source(storage: Any) -> None:
    await storage.put("a", variant(), BODY)
    await storage.put("b", variant(content_type="image/webp"), BODY)
    await storage.put("c", variant(source="photos/dog.jpg"), BODY)
    assert await storage.purge("photos/cat.jpg") == 2
    assert await storage.get("a") is None
    assert await storage.get("b") is None
    assert await storage.get("c") is not None
    assert await storage.purge("photos/cat.jpg") == 0


async def test_expired_variants_are_misses(storage: Any) -> None:
    await storage.put("old", variant(expires_at=datetime.now(UTC) - timedelta(seconds=1)), BODY)
    assert await storage.get("old") is None


async def test_delete_forgets_the_variant(storage: Any) -> None:
    await storage.put("k1", variant(), BODY)
    await storage.delete("k1")
    await storage.delete("k1")
    assert await storage.get("k1") is None


async def test_a_vanished_object_removes_its_metadata(tmp_path: Path, s3_endpoint: str) -> None:
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    collection = MemoryCollection()
    storage = ComposedResultStorage(
        S3BlobStore(client, bucket, None), MongoMetadataStore(collection)
    )
    await storage.put("k1", variant(), BODY)
    hit = await storage.get("k1")
    assert hit is not None
    assert hit.object_key is not None
    client.delete_object(Bucket=bucket, Key=hit.object_key)
    assert await storage.read("k1", hit) is None
    assert collection.documents == {}


async def test_objects_are_written_with_cdn_headers(s3_endpoint: str) -> None:
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    storage = ComposedResultStorage(
        S3BlobStore(client, bucket, None, public_read=True),
        MongoMetadataStore(MemoryCollection()),
        prefix="thumbs/",
        cache_max_age=600,
    )
    await storage.put("k1", variant(source="http://example.com/a b.jpg"), BODY)
    key = "thumbs/http/example.com/a b.jpg/k1.jpg"
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == "public, max-age=600"
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)


async def test_redirect_mode_points_at_the_public_url(s3_endpoint: str) -> None:
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    storage = ComposedResultStorage(
        S3BlobStore(client, bucket, None),
        MongoMetadataStore(MemoryCollection()),
        public_url="https://cdn.example.com/{object_key}",
    )
    await storage.put("k1", variant(), BODY)
    hit = await storage.get("k1")
    assert hit is not None
    assert hit.url == "https://cdn.example.com/results/photos/cat.jpg/k1.jpg"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("photos/cat.jpg", "r/photos/cat.jpg/k.webp", id="path"),
        pytest.param("/abs/cat.jpg", "r/abs/cat.jpg/k.webp", id="leading-slash"),
        pytest.param("https://x.com/a.jpg", "r/https/x.com/a.jpg/k.webp", id="url"),
    ],
)
def test_object_keys_are_readable(source: str, expected: str) -> None:
    assert object_key_for("r/", source, "k", "image/webp") == expected
