"""Image records in MongoDB: one document per original the repository stores.

A record's ``id`` is the sha256 of the bytes for a registered (direct-upload) original, whose
key is content-addressed (identical uploads are one record), and the 32-hex uuid of a Thumbor
upload-API original (``POST /image``; its key is ``prefix + uuid[/slug]``); ``sha256`` is
always the content hash. ``_id`` is ``<tenant>:<id>``; listing by owner or tag
is cursor-paginated on ``_id`` (a cursor is the last id of a page), served by the compound
indexes ``(tenant, owner, _id)`` and ``(tenant, tags, _id)``. Any PyMongo failure becomes a
:class:`~thumbor_py.errors.StorageUnavailableError` (503) here. The collection is PyMongo's
``AsyncCollection`` (or the tests' in-memory double of the same methods).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError, PyMongoError

from thumbor_py.config import RecordsConfig
from thumbor_py.errors import StorageUnavailableError
from thumbor_py.repository.checks import ImageInfo

MAX_PAGE = 100
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRecord:
    """What the repository knows of one original."""

    id: str  # registered: the sha256 (hex); upload API: the id's 32-hex uuid
    tenant: str
    key: str  # the object key in the original storage
    source: str  # the image path in Thumbor and Cloudimage URLs
    bytes: int
    width: int
    height: int
    format: str
    content_type: str
    sha256: str
    focal_point: tuple[float, float] | None = None  # fractions of width and height
    owner: str | None = None
    tags: tuple[str, ...] = ()
    title: str | None = None
    alt: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of_image(
        cls,
        *,
        id: str,
        tenant: str,
        key: str,
        source: str,
        size: int,
        info: ImageInfo,
        sha256: str,
        focal_point: tuple[float, float] | None = None,
        owner: str | None = None,
        tags: tuple[str, ...] = (),
        title: str | None = None,
        alt: str | None = None,
    ) -> ImageRecord:
        """The record of an original stored under ``key`` that the decoder described as
        ``info``, with what its uploader said of it."""
        return cls(
            id=id,
            tenant=tenant,
            key=key,
            source=source,
            bytes=size,
            width=info.width,
            height=info.height,
            format=info.format,
            content_type=info.content_type,
            sha256=sha256,
            focal_point=focal_point,
            owner=owner,
            tags=tags,
            title=title,
            alt=alt,
        )

    def document(self) -> dict[str, Any]:
        """The MongoDB document."""
        values = asdict(self)
        values["tags"] = list(self.tags)
        values["focal_point"] = list(self.focal_point) if self.focal_point else None
        return {"_id": f"{self.tenant}:{self.id}", **values}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ImageRecord:
        """Back from a document (unknown fields ignored)."""
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in document.items() if k in names}
        values["tags"] = tuple(values.get("tags") or ())
        focal = values.get("focal_point")
        values["focal_point"] = (float(focal[0]), float(focal[1])) if focal else None
        for name in ("created_at", "updated_at"):  # JSON (bucket records) holds ISO text
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The record as JSON for API answers."""
        values = asdict(self)
        values["created_at"] = self.created_at.isoformat()
        values["updated_at"] = self.updated_at.isoformat()
        values["tags"] = list(self.tags)
        if self.focal_point:
            values["focal_point"] = {"x": self.focal_point[0], "y": self.focal_point[1]}
        return values


class Collection(Protocol):
    """The part of PyMongo's ``AsyncCollection`` the records use."""

    async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching document."""
        ...

    async def insert_one(self, document: Mapping[str, Any]) -> object:
        """Insert; ``DuplicateKeyError`` when the ``_id`` exists."""
        ...

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], upsert: bool = False
    ) -> object:
        """Replace one matching document (insert it with ``upsert``)."""
        ...

    async def delete_one(self, filter: Mapping[str, Any]) -> object:
        """Delete one matching document."""
        ...

    def find(self, filter: Mapping[str, Any], *, sort: Any = None, limit: int = 0) -> Any:
        """A cursor (``to_list``) over matching documents."""
        ...

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        """Create an index if it does not exist."""
        ...


class ImageRecords(Protocol):
    """Where records live: MongoDB (:class:`RecordStore`) or, without MongoDB, the bucket
    (:class:`~thumbor_py.repository.bucket_records.BucketRecords`). Failures raise
    ``StorageUnavailableError``; ``get`` returns None for an unknown id."""

    async def add(self, record: ImageRecord) -> tuple[ImageRecord, bool]:
        """Insert; when the same content is recorded already, that record and False."""
        ...

    async def put(self, record: ImageRecord) -> None:
        """Insert or replace the record of ``record.id`` (the upload API's create and PUT)."""
        ...

    async def get(self, tenant: str, image_id: str) -> ImageRecord | None:
        """The record, or None."""
        ...

    async def delete(self, tenant: str, image_id: str) -> None:
        """Remove the record (nothing when there is none)."""
        ...

    async def page(
        self,
        tenant: str,
        *,
        owner: str | None = None,
        tag: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[list[ImageRecord], str | None]:
        """Up to ``limit`` records (by id) after the cursor ``after``; the next cursor."""
        ...

    async def all_keys(self, tenant: str) -> Sequence[tuple[str, str]]:
        """``(id, key)`` of every record of ``tenant``."""
        ...


class RecordStore:
    """Records of every tenant in one MongoDB collection."""

    def __init__(
        self, collection: Collection | None = None, *, settings: RecordsConfig | None = None
    ) -> None:
        if collection is None and settings is None:
            raise ValueError("give a collection or the settings of one")
        self._given = collection
        self._settings = settings
        self._client: Any = None

    @property
    def _collection(self) -> Collection:
        if self._given is None:
            raise RuntimeError("RecordStore.start() was not awaited")
        return self._given

    async def _connect(self) -> None:
        settings = self._settings
        assert settings is not None
        from pymongo import AsyncMongoClient

        def make() -> Any:  # the client probes the platform: off the loop
            return AsyncMongoClient(
                settings.uri,
                tz_aware=True,
                serverSelectionTimeoutMS=settings.timeout_ms,
                connectTimeoutMS=settings.timeout_ms,
            )

        self._client = await asyncio.to_thread(make)
        self._given = self._client[settings.database][settings.collection]

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except PyMongoError as exc:
            raise StorageUnavailableError(f"image records: {type(exc).__name__}") from exc

    async def start(self) -> None:
        """Connect (when built from settings) and create the indexes (idempotent)."""
        if self._given is None:
            await self._connect()
        try:
            await self._collection.create_index([("tenant", 1), ("owner", 1), ("_id", 1)])
            await self._collection.create_index([("tenant", 1), ("tags", 1), ("_id", 1)])
            await self._collection.create_index([("tenant", 1), ("key", 1)])
        except PyMongoError as exc:  # an outage at start-up: serve, records answer 503
            log.warning("image records: indexes not created (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        """Close the client (when this store made it)."""
        if self._client is not None:
            await self._client.close()
            self._client = self._given = None

    async def add(self, record: ImageRecord) -> tuple[ImageRecord, bool]:
        """Insert ``record``; when one with the same content exists, it and False."""
        with self._translated():
            try:
                await self._collection.insert_one(record.document())
            except DuplicateKeyError:
                existing = await self.get(record.tenant, record.id)
                if existing is None:  # deleted in between: try once more
                    await self._collection.insert_one(record.document())
                    return record, True
                return existing, False
        return record, True

    async def put(self, record: ImageRecord) -> None:
        """Insert or replace (one ``replace_one`` with upsert)."""
        document = record.document()
        with self._translated():
            await self._collection.replace_one({"_id": document["_id"]}, document, upsert=True)

    async def get(self, tenant: str, image_id: str) -> ImageRecord | None:
        """The record, or None."""
        with self._translated():
            document = await self._collection.find_one({"_id": f"{tenant}:{image_id}"})
        return None if document is None else ImageRecord.from_document(document)

    async def delete(self, tenant: str, image_id: str) -> None:
        """Remove the record (nothing when there is none)."""
        with self._translated():
            await self._collection.delete_one({"_id": f"{tenant}:{image_id}"})

    async def page(
        self,
        tenant: str,
        *,
        owner: str | None = None,
        tag: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[list[ImageRecord], str | None]:
        """Up to ``limit`` records after the cursor ``after``; and the next cursor."""
        query: dict[str, Any] = {"tenant": tenant}
        if owner is not None:
            query["owner"] = owner
        if tag is not None:
            query["tags"] = tag
        if after:
            query["_id"] = {"$gt": f"{tenant}:{after}"}
        size = max(1, min(limit, MAX_PAGE))
        with self._translated():
            cursor = self._collection.find(query, sort=[("_id", 1)], limit=size + 1)
            documents = await cursor.to_list(size + 1)
        records = [ImageRecord.from_document(d) for d in documents[:size]]
        more = len(documents) > size
        return records, (records[-1].id if more and records else None)

    async def all_keys(self, tenant: str) -> Sequence[tuple[str, str]]:
        """``(id, key)`` of every record of ``tenant`` (housekeeping)."""
        with self._translated():
            cursor = self._collection.find({"tenant": tenant}, sort=[("_id", 1)])
            documents = await cursor.to_list(None)
        return [(str(d["id"]), str(d["key"])) for d in documents]
