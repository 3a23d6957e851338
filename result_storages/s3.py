"""S3 / DigitalOcean Spaces result storage with MongoDB metadata.

Composed of two parts, each replaceable and testable on its own: a blob store for the bytes
(:class:`S3BlobStore`, boto3) and a metadata store for the documents
(:class:`~result_storages.mongodb.MongoMetadataStore`). A lookup is one indexed ``find_one``;
the object is only read when the body is needed, or never when hits are redirected to a
public/CDN URL.

Object keys are readable: ``<prefix><source>/<result key>.<ext>``, for example
``results/photos/cat.jpg/3fa2…e9.webp``; a source URL's ``://`` becomes ``/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

from botocore.exceptions import ClientError
from pymongo import AsyncMongoClient

from result_storages.mongodb import MongoMetadataStore
from thumbor_py.plugins import MetadataStore, PluginContext, StoredResult
from thumbor_py.s3client import s3_client

log = logging.getLogger(__name__)

T = TypeVar("T")
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/avif": "avif",
    "application/json": "json",
}
MONGODB_URI_ENV = "THUMBOR_PY_MONGODB_URI"


class BlobStore(Protocol):
    """Bytes by object key."""

    async def put(self, object_key: str, data: bytes, content_type: str, max_age: int) -> None:
        """Write an object."""
        ...

    async def get(self, object_key: str) -> bytes | None:
        """An object's bytes, or None if it does not exist."""
        ...

    async def delete(self, object_key: str) -> None:
        """Delete an object (missing is fine)."""
        ...


def object_key_for(prefix: str, source: str, key: str, content_type: str) -> str:
    """The readable object key of a variant."""
    readable = source.replace("://", "/").lstrip("/") or "_"
    return f"{prefix}{readable}/{key}.{_EXTENSIONS.get(content_type, 'bin')}"


class ComposedResultStorage:
    """A result storage made of a blob store and a metadata store.

    ``put`` writes the object before the document, so a document always means the object
    exists; ``read`` deletes the document when the object turns out to be missing.
    """

    def __init__(
        self,
        blobs: BlobStore,
        metadata: MetadataStore,
        *,
        prefix: str = "results/",
        public_url: str | None = None,
        cache_max_age: int = 86400,
    ) -> None:
        self.blobs = blobs
        self.metadata = metadata
        self._prefix = prefix
        self._public_url = public_url
        self._cache_max_age = cache_max_age

    async def get(self, key: str) -> StoredResult | None:
        """The document for ``key``; with a public URL template, where to redirect."""
        result = await self.metadata.find(key)
        if result is None or self._public_url is None or result.object_key is None:
            return result
        return replace(result, url=self._public_url.format(object_key=result.object_key, key=key))

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """The object's bytes; a vanished object also removes its document."""
        if result.object_key is None:
            await self.metadata.delete(key)
            return None
        data = await self.blobs.get(result.object_key)
        if data is None:
            await self.metadata.delete(key)
        return data

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        """Upload the object, then upsert the document."""
        object_key = object_key_for(self._prefix, result.source, key, result.content_type)
        max_age = self._cache_max_age if result.max_age is None else result.max_age
        await self.blobs.put(object_key, data, result.content_type, max_age)
        await self.metadata.upsert(key, replace(result, object_key=object_key))

    async def delete(self, key: str) -> None:
        """Delete the document, then the object."""
        result = await self.metadata.find(key)
        await self.metadata.delete(key)
        if result is not None and result.object_key is not None:
            await self.blobs.delete(result.object_key)

    async def purge(self, source: str) -> int:
        """Delete every variant of ``source``: documents first, then objects."""
        variants = await self.metadata.keys_for_source(source)
        for key, object_key in variants:
            await self.metadata.delete(key)
            if object_key is not None:
                await self.blobs.delete(object_key)
        return len(variants)


class S3BlobStore:
    """Objects in one S3 bucket through a shared boto3 client, called off the event loop."""

    def __init__(
        self, client: Any, bucket: str, executor: Executor | None, *, public_read: bool = False
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._executor = executor
        self._public_read = public_read

    async def _run(self, function: Callable[..., T], **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(**kwargs))

    async def put(self, object_key: str, data: bytes, content_type: str, max_age: int) -> None:
        """Upload with the headers a CDN in front of the bucket needs."""
        extra: dict[str, Any] = {"ACL": "public-read"} if self._public_read else {}
        cache_control = f"public, max-age={max_age}" if max_age > 0 else "no-cache"
        await self._run(
            self._client.put_object,
            Bucket=self._bucket,
            Key=object_key,
            Body=data,
            ContentType=content_type,
            CacheControl=cache_control,
            **extra,
        )

    async def get(self, object_key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        return await self._run(self._get_sync, object_key=object_key)

    def _get_sync(self, object_key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=object_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    async def delete(self, object_key: str) -> None:
        """Delete the object."""
        await self._run(self._client.delete_object, Bucket=self._bucket, Key=object_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class MongoSettings:
    """``result_storage.settings.metadata``: where the documents live."""

    uri: str | None = None
    database: str = "thumbor_py"
    collection: str = "results"
    timeout_ms: int = 1000
    max_pool_size: int = 50


class S3ResultStorage:
    """The ``s3`` result storage: Spaces/S3 objects plus MongoDB metadata."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``result_storage.settings`` for the ``s3`` result storage."""

        bucket: str
        prefix: str = "results/"
        endpoint_url: str | None = None
        region: str | None = None
        access_key_id: str | None = None
        secret_access_key: str | None = None
        public_read: bool = False
        serve: Literal["stream", "redirect"] = "stream"
        public_url: str | None = None
        cache_max_age: int = 86400
        connect_timeout: float = 2.0
        read_timeout: float = 5.0
        max_pool_connections: int = 32
        metadata: MongoSettings = field(default_factory=MongoSettings)

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        if settings.serve == "redirect" and not settings.public_url:
            raise ValueError("serve: redirect needs public_url, e.g. https://cdn/{object_key}")
        if not (settings.metadata.uri or os.environ.get(MONGODB_URI_ENV)):
            raise ValueError(f"metadata.uri is required (or set {MONGODB_URI_ENV})")
        self._settings = settings
        self._context = context
        self._composed: ComposedResultStorage | None = None
        self._mongo: Any = None

    async def start(self) -> None:
        """Create the boto3 client and the AsyncMongoClient, once per process."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        # Both constructors touch the filesystem (config files, platform probes): off the loop.
        client = await loop.run_in_executor(self._context.executor, _boto3_client, settings)
        self._mongo = await loop.run_in_executor(
            self._context.executor, _mongo_client, settings.metadata
        )
        mongo_settings = settings.metadata
        collection = self._mongo[mongo_settings.database][mongo_settings.collection]
        metadata = MongoMetadataStore(collection)
        self._composed = ComposedResultStorage(
            S3BlobStore(
                client, settings.bucket, self._context.executor, public_read=settings.public_read
            ),
            metadata,
            prefix=settings.prefix,
            public_url=settings.public_url if settings.serve == "redirect" else None,
            cache_max_age=settings.cache_max_age,
        )
        try:
            await metadata.ensure_indexes()
        except Exception as exc:  # MongoDB may be down at boot; storage then degrades
            log.warning("cannot create MongoDB indexes now: %s", exc)

    async def aclose(self) -> None:
        """Close the MongoDB client (boto3 clients need no closing)."""
        if self._mongo is not None:
            await self._mongo.close()

    @property
    def composed(self) -> ComposedResultStorage:
        """The blob + metadata composition; only after ``start``."""
        if self._composed is None:
            raise RuntimeError("S3ResultStorage used before start()")
        return self._composed

    async def get(self, key: str) -> StoredResult | None:
        """See :class:`ComposedResultStorage`."""
        return await self.composed.get(key)

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """See :class:`ComposedResultStorage`."""
        return await self.composed.read(key, result)

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        """See :class:`ComposedResultStorage`."""
        await self.composed.put(key, result, data)

    async def delete(self, key: str) -> None:
        """See :class:`ComposedResultStorage`."""
        await self.composed.delete(key)

    async def purge(self, source: str) -> int:
        """See :class:`ComposedResultStorage`."""
        return await self.composed.purge(source)


def _mongo_client(settings: MongoSettings) -> Any:
    return AsyncMongoClient(
        settings.uri or os.environ[MONGODB_URI_ENV],
        tz_aware=True,
        serverSelectionTimeoutMS=settings.timeout_ms,
        connectTimeoutMS=settings.timeout_ms,
        socketTimeoutMS=settings.timeout_ms * 5,
        maxPoolSize=settings.max_pool_size,
    )


def _boto3_client(settings: S3ResultStorage.Settings) -> Any:
    return s3_client(
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        access_key_id=settings.access_key_id,
        secret_access_key=settings.secret_access_key,
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_attempts=2,
    )
