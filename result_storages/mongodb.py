"""MongoDB metadata store: one document per rendered variant, through PyMongo's async API.

Document schema (collection ``results`` by default)::

    {
      "_id": "<result key: sha256 hex>",
      "path": "300x200/smart/photos/cat.jpg",     # the signed path, no signature
      "source": "photos/cat.jpg",                  # the image part, percent-decoded once
      "object_key": "results/photos/cat.jpg/<key>.jpg",
      "content_type": "image/jpeg",
      "bytes": 18211, "width": 300, "height": 200,
      "etag": "\\"<hex>\\"",
      "max_age": null,                              # a max_age() filter's value, if any
      "created_at": ISODate(...), "expires_at": ISODate(...) | null
    }

Indexes: a TTL index on ``expires_at`` (MongoDB deletes expired documents itself) and an
index on ``source`` for purges. Lookups are one ``find_one`` on ``_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from thumbor_py.plugins import StoredResult


class AsyncCursor(Protocol):
    """The part of PyMongo's ``AsyncCursor`` used here."""

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        """Every remaining document."""
        ...


class AsyncCollection(Protocol):
    """The part of PyMongo's ``AsyncCollection`` used here (the test double implements it)."""

    async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching document."""
        ...

    async def replace_one(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        upsert: bool = False,
    ) -> object:
        """Replace (or insert) one document."""
        ...

    async def delete_one(self, filter: Mapping[str, Any]) -> object:
        """Delete one matching document."""
        ...

    def find(
        self,
        filter: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> AsyncCursor:
        """A cursor over matching documents."""
        ...

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        """Create an index if it does not exist."""
        ...


class MongoMetadataStore:
    """A :class:`~thumbor_py.plugins.MetadataStore` over an async MongoDB collection."""

    def __init__(self, collection: AsyncCollection) -> None:
        self._collection = collection
        self._indexed = False

    async def ensure_indexes(self) -> None:
        """Create the TTL index on ``expires_at`` and the index on ``source`` (idempotent)."""
        await self._collection.create_index("expires_at", expireAfterSeconds=0)
        await self._collection.create_index("source")
        self._indexed = True

    async def find(self, key: str) -> StoredResult | None:
        """The variant's metadata; expired documents count as absent (TTL runs lazily)."""
        document = await self._collection.find_one({"_id": key})
        if document is None:
            return None
        result = from_document(document)
        if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
            return None
        return result

    async def upsert(self, key: str, result: StoredResult) -> None:
        """Insert or replace the variant's document (indexes first, if start-up could not)."""
        if not self._indexed:
            await self.ensure_indexes()
        await self._collection.replace_one({"_id": key}, to_document(key, result), upsert=True)

    async def delete(self, key: str) -> None:
        """Delete the variant's document."""
        await self._collection.delete_one({"_id": key})

    async def keys_for_source(self, source: str) -> list[tuple[str, str | None]]:
        """Every ``(key, object_key)`` stored for ``source``."""
        cursor = self._collection.find({"source": source}, {"_id": 1, "object_key": 1})
        return [(doc["_id"], doc.get("object_key")) for doc in await cursor.to_list(None)]


def to_document(key: str, result: StoredResult) -> dict[str, Any]:
    """The MongoDB document for a variant (schema in the module docstring)."""
    return {
        "_id": key,
        "path": result.path,
        "source": result.source,
        "object_key": result.object_key,
        "content_type": result.content_type,
        "bytes": result.size,
        "width": result.width,
        "height": result.height,
        "etag": result.etag,
        "max_age": result.max_age,
        "created_at": result.created_at,
        "expires_at": result.expires_at,
    }


def from_document(document: Mapping[str, Any]) -> StoredResult:
    """A :class:`StoredResult` from a document; naive datetimes are read as UTC."""
    created = _utc(document["created_at"])
    assert created is not None
    return StoredResult(
        path=document["path"],
        source=document["source"],
        object_key=document.get("object_key"),
        content_type=document["content_type"],
        size=document["bytes"],
        width=document["width"],
        height=document["height"],
        etag=document["etag"],
        max_age=document.get("max_age"),
        created_at=created,
        expires_at=_utc(document.get("expires_at")),
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
