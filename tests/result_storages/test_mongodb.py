"""MongoMetadataStore contract: the in-memory double, and a real MongoDB when configured."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from result_storages.mongodb import (
    MongoMetadataStore,
    MongoSettings,
    hosts_of,
    mongo_client,
    to_document,
)
from thumbor_py.errors import StorageUnavailableError
from thumbor_py.plugins import MetadataStore, StoredResult


def variant(source: str = "photos/cat.jpg", **changes: Any) -> StoredResult:
    values: dict[str, Any] = {
        "path": f"300x200/{source}",
        "source": source,
        "content_type": "image/jpeg",
        "etag": '"abc"',
        "size": 1234,
        "width": 300,
        "height": 200,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "object_key": f"results/{source}/k.jpg",
    }
    values.update(changes)
    return StoredResult(**values)


def test_mongo_store_satisfies_the_protocol() -> None:
    assert isinstance(MongoMetadataStore(object()), MetadataStore)  # type: ignore[arg-type]


def test_document_has_the_documented_schema() -> None:
    document = to_document("k1", variant())
    assert set(document) == {
        "_id", "path", "source", "object_key", "content_type", "bytes", "width", "height",
        "etag", "max_age", "created_at", "expires_at", "pending",
    }  # fmt: skip
    assert document["_id"] == "k1"
    assert document["bytes"] == 1234


async def upsert(store: MongoMetadataStore, key: str, result: StoredResult) -> None:
    """Both phases of a write, as a put that succeeds does them."""
    await store.begin(key, result, "t")
    assert await store.complete(key, "t")


async def test_write_then_find_round_trips(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    assert await store.find("k1") is None
    await upsert(store, "k1", variant())
    assert await store.find("k1") == variant()


async def test_pending_documents_are_not_hits_but_are_listed(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await store.begin("k1", variant(), "t1")
    assert await store.find("k1") is None
    assert await store.keys_for_source("photos/cat.jpg") == [("k1", "results/photos/cat.jpg/k.jpg")]
    assert await store.complete("k1", "t1")
    assert await store.find("k1") == variant()


async def test_complete_needs_the_same_write(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await store.begin("k1", variant(), "first")
    await store.begin("k1", variant(), "second")  # another worker took over
    assert not await store.complete("k1", "first")
    assert await store.find("k1") is None
    assert await store.complete("k1", "second")
    await store.delete("k1")
    assert not await store.complete("k1", "second")  # purged meanwhile


async def test_upsert_replaces_the_document(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await upsert(store, "k1", variant())
    await upsert(store, "k1", variant(etag='"new"'))
    found = await store.find("k1")
    assert found is not None
    assert found.etag == '"new"'


async def test_expired_documents_count_as_absent(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await upsert(store, "old", variant(expires_at=past))
    await upsert(store, "new", variant(expires_at=datetime.now(UTC) + timedelta(hours=1)))
    assert await store.find("old") is None
    assert await store.find("new") is not None


async def test_keys_for_source_lists_every_variant(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await upsert(store, "a", variant())
    await upsert(store, "b", variant(object_key="results/photos/cat.jpg/b.webp"))
    await upsert(store, "c", variant(source="photos/dog.jpg"))
    found = sorted(await store.keys_for_source("photos/cat.jpg"))
    assert found == [("a", "results/photos/cat.jpg/k.jpg"), ("b", "results/photos/cat.jpg/b.webp")]


async def test_delete_removes_only_that_document(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await upsert(store, "a", variant())
    await upsert(store, "b", variant())
    await store.delete("a")
    await store.delete("missing")
    assert await store.find("a") is None
    assert await store.find("b") is not None


async def test_indexes_are_ttl_on_expiry_and_on_source(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await store.ensure_indexes()
    if hasattr(collection, "indexes"):
        assert ("expires_at", {"expireAfterSeconds": 0}) in collection.indexes
        assert ("source", {}) in collection.indexes
    else:
        info = await collection.index_information()
        assert any(spec.get("expireAfterSeconds") == 0 for spec in info.values())
        assert any(spec["key"] == [("source", 1)] for spec in info.values())


async def test_documents_without_a_pending_field_are_complete(collection: Any) -> None:
    document = to_document("old", variant())
    del document["pending"]  # written before two-phase writes existed
    await collection.replace_one({"_id": "old"}, document, upsert=True)
    assert await MongoMetadataStore(collection).find("old") == variant()


async def test_an_outage_is_one_line_with_host_and_error_class() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"mongodb://user:secret@127.0.0.1:{port}/db?directConnection=true"
    settings = MongoSettings(uri=uri, timeout_ms=100)
    client = await asyncio.to_thread(mongo_client, settings)
    store = MongoMetadataStore(client["db"]["results"], label=f"MongoDB {hosts_of(uri)}")
    try:
        with pytest.raises(StorageUnavailableError) as caught:
            await store.find("k1")
    finally:
        await client.close()
    assert str(caught.value) == f"MongoDB 127.0.0.1:{port}: ServerSelectionTimeoutError"


@pytest.mark.parametrize(
    ("uri", "hosts"),
    [
        pytest.param("mongodb://h:27017/", "h:27017", id="plain"),
        pytest.param("mongodb://u:p@a:1,b:2/db?x=1", "a:1,b:2", id="credentials-replica-set"),
        pytest.param(
            "mongodb+srv://u:p@cluster.example.com/?tls=true", "cluster.example.com", id="srv"
        ),
    ],
)
def test_hosts_of_hides_credentials(uri: str, hosts: str) -> None:
    assert hosts_of(uri) == hosts
