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
      "created_at": ISODate(...), "expires_at": ISODate(...) | null,
      "pending": "<write token>" | null             # set until the object is uploaded
    }

Indexes: a TTL index on ``expires_at`` (MongoDB deletes expired documents itself) and an
index on ``source`` for purges. Lookups are one ``find_one`` on ``_id``; a pending document
is not a hit. Driver errors are translated here, into one line naming the host and the
error class (never the driver's topology description).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from thumbor_py.errors import StorageUnavailableError
from thumbor_py.plugins import StoredResult


@dataclass(frozen=True, slots=True, kw_only=True)
class MongoSettings:
    """``result_storage.settings.metadata``: where the documents live.

    ``uri`` may come from ``THUMBOR_PY_MONGODB_URI`` (the config's environment overrides).
    """

    uri: str | None = None
    database: str = "thumbor_py"
    collection: str = "results"
    timeout_ms: int = 1000
    max_pool_size: int = 50


def mongo_client(settings: MongoSettings) -> Any:
    """An ``AsyncMongoClient`` with short timeouts (it probes the platform: off the loop)."""
    return AsyncMongoClient(
        settings.uri,
        tz_aware=True,
        serverSelectionTimeoutMS=settings.timeout_ms,
        connectTimeoutMS=settings.timeout_ms,
        socketTimeoutMS=settings.timeout_ms * 5,
        maxPoolSize=settings.max_pool_size,
    )


def hosts_of(uri: str) -> str:
    """The host list of a MongoDB URI, without credentials, database or options."""
    rest = uri.split("://", 1)[-1]
    hosts = rest.split("/", 1)[0].split("?", 1)[0]
    return hosts.rpartition("@")[2] or "?"


class AsyncCursor(Protocol):
    """The part of PyMongo's ``AsyncCursor`` used here."""

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        """Every remaining document."""
        ...


class UpdateResult(Protocol):
    """The part of PyMongo's ``UpdateResult`` used here."""

    @property
    def matched_count(self) -> int:
        """How many documents matched the filter."""
        ...


class AsyncCollection(Protocol):
    """The part of PyMongo's ``AsyncCollection`` used here (the test double implements it)."""

    async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching document."""
        ...

    async def update_one(
        self, filter: Mapping[str, Any], update: Mapping[str, Any]
    ) -> UpdateResult:
        """Update one matching document."""
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

    def __init__(self, collection: AsyncCollection, *, label: str = "MongoDB") -> None:
        self._collection = collection
        self._label = label
        self._indexed = False

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except PyMongoError as exc:
            raise StorageUnavailableError(f"{self._label}: {type(exc).__name__}") from exc

    async def ensure_indexes(self) -> None:
        """Create the TTL index on ``expires_at`` and the index on ``source`` (idempotent)."""
        with self._translated():
            await self._collection.create_index("expires_at", expireAfterSeconds=0)
            await self._collection.create_index("source")
        self._indexed = True

    async def find(self, key: str) -> StoredResult | None:
        """A completed variant's metadata; pending or expired documents count as absent."""
        with self._translated():
            document = await self._collection.find_one({"_id": key})
        if document is None or document.get("pending"):
            return None
        result = from_document(document)
        if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
            return None
        return result

    async def begin(self, key: str, result: StoredResult, token: str) -> None:
        """Insert or replace the variant's document, pending under ``token``."""
        if not self._indexed:
            await self.ensure_indexes()
        document = to_document(key, result, pending=token)
        with self._translated():
            await self._collection.replace_one({"_id": key}, document, upsert=True)

    async def complete(self, key: str, token: str) -> bool:
        """Mark the document written under ``token`` complete; False if it is gone or newer."""
        with self._translated():
            done = await self._collection.update_one(
                {"_id": key, "pending": token}, {"$set": {"pending": None}}
            )
        return done.matched_count > 0

    async def delete(self, key: str) -> None:
        """Delete the variant's document."""
        with self._translated():
            await self._collection.delete_one({"_id": key})

    async def keys_for_source(self, source: str) -> list[tuple[str, str | None]]:
        """Every ``(key, object_key)`` stored for ``source``, pending ones included."""
        with self._translated():
            cursor = self._collection.find({"source": source}, {"_id": 1, "object_key": 1})
            documents = await cursor.to_list(None)
        return [(doc["_id"], doc.get("object_key")) for doc in documents]


def to_document(key: str, result: StoredResult, *, pending: str | None = None) -> dict[str, Any]:
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
        "pending": pending,
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
