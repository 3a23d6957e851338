"""One contract, every result storage: files on disk, and the shipped ``s3`` storage (started
as the server starts it) on moto's S3 server with the MongoDB in-memory double."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from result_storages.composed import check_object_key, public_url, source_folder
from result_storages.file import FileResultStorage
from result_storages.mongodb import MongoMetadataStore
from result_storages.s3 import (
    ComposedResultStorage,
    MongoSettings,
    S3BlobStore,
    S3ResultStorage,
    object_key_for,
)
from tests.result_storages.memory_collection import MemoryCollection
from tests.result_storages.test_mongodb import variant
from thumbor_py.errors import StorageKeyError
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
    storage = s3_storage(s3_endpoint, MemoryCollection())
    await storage.start()
    try:
        yield storage
    finally:
        await storage.aclose()


def s3_storage(endpoint: str, collection: MemoryCollection, **settings: Any) -> S3ResultStorage:
    """The shipped ``s3`` storage on a fresh moto bucket, with ``collection`` for MongoDB."""
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return S3ResultStorage(
        S3ResultStorage.Settings(
            bucket=bucket, endpoint_url=endpoint, region="us-east-1", **settings
        ),
        PluginContext(max_source_bytes=1),
        collection=collection,
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
    shipped = S3ResultStorage(
        S3ResultStorage.Settings(bucket="b", metadata=MongoSettings(uri="mongodb://h/")),
        PluginContext(max_source_bytes=1),
    )
    assert isinstance(shipped, ResultStorage)


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
    storage = s3_storage(
        s3_endpoint,
        MemoryCollection(),
        serve="redirect",
        public_url="https://cdn.example.com/{object_key}",
    )
    await storage.start()
    try:
        await storage.put("k1", variant(), BODY)
        hit = await storage.get("k1")
    finally:
        await storage.aclose()
    assert hit is not None
    assert hit.url == "https://cdn.example.com/results/photos/cat.jpg/k1.jpg"


@pytest.mark.parametrize(
    ("source", "url_path"),
    [
        pytest.param("a?b.jpg", "a%3Fb.jpg", id="question-mark"),
        pytest.param("a#b.jpg", "a%23b.jpg", id="hash"),
        pytest.param("a b.jpg", "a%20b.jpg", id="space"),
        pytest.param("a%41.jpg", "a%2541.jpg", id="percent-41"),
        pytest.param("a+b.jpg", "a%2Bb.jpg", id="plus"),
        pytest.param("x/../a.jpg", "x/%252E%252E/a.jpg", id="dot-dot"),
        pytest.param("x/./a.jpg", "x/%252E/a.jpg", id="dot"),
        pytest.param("a\r\nb.jpg", "a%250D%250Ab.jpg", id="CR-LF"),
        pytest.param("caf\u00e9.jpg", "caf%C3%A9.jpg", id="non-ascii"),
    ],
)
async def test_redirect_urls_are_percent_encoded_per_segment(
    s3_endpoint: str, source: str, url_path: str
) -> None:
    client = s3_client(s3_endpoint)
    bucket = f"results-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    storage = ComposedResultStorage(
        S3BlobStore(client, bucket, None),
        MongoMetadataStore(MemoryCollection()),
        public_url="https://cdn.example.com/{object_key}",
    )
    await storage.put("k1", variant(source=source), BODY)
    hit = await storage.get("k1")
    assert hit is not None
    assert hit.url == f"https://cdn.example.com/results/{url_path}/k1.jpg"
    assert hit.object_key is not None
    # The object really is where the URL (decoded once, as S3 and CDNs do) points.
    assert await storage.read("k1", hit) == BODY
    assert await storage.purge(source) == 1
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize(
    "object_key",
    [
        pytest.param("results/../x/k.jpg", id="dot-dot"),
        pytest.param("./results/k.jpg", id="dot"),
        pytest.param("results/a\rb/k.jpg", id="CR"),
        pytest.param("results/a\x00/k.jpg", id="NUL"),
        pytest.param("results/a\x7f/k.jpg", id="DEL"),
    ],
)
def test_unsafe_object_keys_are_refused(object_key: str) -> None:
    with pytest.raises(StorageKeyError):
        check_object_key(object_key)
    with pytest.raises(StorageKeyError):
        public_url("https://cdn/{object_key}", object_key, "k")


@pytest.mark.parametrize("prefix", ["../results/", "a/./b/", "r\n/"])
def test_unsafe_prefixes_are_a_config_error(prefix: str) -> None:
    settings = S3ResultStorage.Settings(
        bucket="b", prefix=prefix, metadata=MongoSettings(uri="mongodb://h/")
    )
    with pytest.raises(ValueError, match="prefix"):
        S3ResultStorage(settings, PluginContext(max_source_bytes=1))


def test_source_folders_escape_what_a_url_would_rewrite() -> None:
    assert source_folder("r/", "a//b/../c\td") == "r/a/_/b/%2E%2E/c%09d/"


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
