"""MongoMetadataStore contract: the in-memory double, and a real MongoDB when configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from result_storages.mongodb import MongoMetadataStore, to_document
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
        "etag", "max_age", "created_at", "expires_at",
    }  # fmt: skip
    assert document["_id"] == "k1"
    assert document["bytes"] == 1234


async def test_upsert_then_find_round_trips(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    assert await store.find("k1") is None
    await store.upsert("k1", variant())
    assert await store.find("k1") == variant()


async def test_upsert_replaces_the_document(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await store.upsert("k1", variant())
    await store.upsert("k1", variant(etag='"new"'))
    found = await store.find("k1")
    assert found is not None
    assert found.etag == '"new"'


async def test_expired_documents_count_as_absent(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.upsert("old", variant(expires_at=past))
    await store.upsert("new", variant(expires_at=datetime.now(UTC) + timedelta(hours=1)))
    assert await store.find("old") is None
    assert await store.find("new") is not None


async def test_keys_for_source_lists_every_variant(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await store.upsert("a", variant())
    await store.upsert("b", variant(object_key="results/photos/cat.jpg/b.webp"))
    await store.upsert("c", variant(source="photos/dog.jpg"))
    found = sorted(await store.keys_for_source("photos/cat.jpg"))
    assert found == [("a", "results/photos/cat.jpg/k.jpg"), ("b", "results/photos/cat.jpg/b.webp")]


async def test_delete_removes_only_that_document(collection: Any) -> None:
    store = MongoMetadataStore(collection)
    await store.upsert("a", variant())
    await store.upsert("b", variant())
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
