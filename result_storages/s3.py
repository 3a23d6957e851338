"""S3 / DigitalOcean Spaces result storage with MongoDB metadata.

Composed of two parts, each replaceable and testable on its own: a blob store for the bytes
(:class:`S3BlobStore`, boto3) and a metadata store for the documents
(:class:`~result_storages.mongodb.MongoMetadataStore`), kept consistent by
:class:`~result_storages.composed.ComposedResultStorage`. A lookup is one indexed
``find_one``; the object is only read when the body is needed, or never when hits are
redirected to a public/CDN URL.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from result_storages.composed import (
    BlobStore,
    ComposedResultStorage,
    check_object_key,
    object_key_for,
    source_folder,
)
from result_storages.mongodb import (
    AsyncCollection,
    MongoMetadataStore,
    MongoSettings,
    hosts_of,
    mongo_client,
)
from thumbor_py.errors import StorageError, StorageUnavailableError
from thumbor_py.plugins import PluginContext, StoredResult
from thumbor_py.s3client import S3Client, S3Settings, describe, error_code

__all__ = [
    "BlobStore",
    "ComposedResultStorage",
    "MongoSettings",
    "S3BlobStore",
    "S3ResultStorage",
    "object_key_for",
    "source_folder",
]

log = logging.getLogger(__name__)


class S3BlobStore:
    """Objects in one S3 bucket through a shared boto3 client, called off the event loop.

    botocore's errors are translated here into :class:`StorageUnavailableError`, one line
    naming the endpoint, the bucket and the S3 error code or exception class.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        executor: Executor | None,
        *,
        public_read: bool = False,
        label: str = "S3",
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._executor = executor
        self._public_read = public_read
        self._label = label

    async def _run(self, function: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except (ClientError, BotoCoreError) as exc:
            where = f"{self._label} bucket {self._bucket}"
            raise StorageUnavailableError(f"{where}: {describe(exc)}") from exc

    async def put(self, object_key: str, data: bytes, content_type: str, max_age: int) -> None:
        """Upload with the headers a CDN in front of the bucket needs."""
        extra: dict[str, Any] = {"ACL": "public-read"} if self._public_read else {}
        cache_control = f"public, max-age={max_age}" if max_age > 0 else "no-cache"
        arguments = {
            "Bucket": self._bucket,
            "Key": object_key,
            "Body": data,
            "ContentType": content_type,
            "CacheControl": cache_control,
            **extra,
        }
        await self._run(lambda: self._client.put_object(**arguments))

    async def get(self, object_key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        data: bytes | None = await self._run(self._get_sync, object_key)
        return data

    def _get_sync(self, object_key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=object_key)
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    async def delete(self, object_key: str) -> None:
        """Delete the object (missing is fine: S3 answers 204 either way)."""
        await self._run(lambda: self._client.delete_object(Bucket=self._bucket, Key=object_key))

    async def keys_in(self, folder: str) -> list[str]:
        """The keys of the objects directly in ``folder``."""
        keys: list[str] = await self._run(self._list_sync, folder)
        return keys

    def _list_sync(self, folder: str) -> list[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._bucket, Prefix=folder, Delimiter="/")
        return [item["Key"] for page in pages for item in page.get("Contents", ())]


class S3ResultStorage:
    """The ``s3`` result storage: Spaces/S3 objects plus MongoDB metadata."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings(S3Settings):
        """``result_storage.settings``: the shared :class:`S3Settings` plus its own."""

        bucket: str
        prefix: str = "results/"
        public_read: bool = False
        serve: Literal["stream", "redirect"] = "stream"
        public_url: str | None = None
        cache_max_age: int = 86400
        metadata: MongoSettings = field(default_factory=MongoSettings)

    def __init__(
        self,
        settings: Settings,
        context: PluginContext,
        *,
        collection: AsyncCollection | None = None,
        client: Any = None,
    ) -> None:
        """``collection`` and ``client`` replace the MongoDB collection and the boto3 client
        that ``start`` would build (tests, or an application that already has them)."""
        _check(settings, has_collection=collection is not None)
        self._settings = settings
        self._s3 = S3Client(settings, client=client)
        self._collection = collection
        self._mongo: Any = None
        self._composed: ComposedResultStorage | None = None

    async def start(self) -> None:
        """Create the boto3 client and the AsyncMongoClient, once per process."""
        settings = self._settings
        await self._s3.start()
        collection = self._collection
        if collection is None:
            # The constructor probes the platform: off the loop.
            self._mongo = await asyncio.to_thread(mongo_client, settings.metadata)
            collection = self._mongo[settings.metadata.database][settings.metadata.collection]
        label = f"MongoDB {hosts_of(settings.metadata.uri or '')}"
        metadata = MongoMetadataStore(collection, label=label)
        blobs = S3BlobStore(
            self._s3.client,
            settings.bucket,
            self._s3.executor,
            public_read=settings.public_read,
            label=f"S3 {settings.endpoint_label}",
        )
        self._composed = ComposedResultStorage(
            blobs,
            metadata,
            prefix=settings.prefix,
            public_url=settings.public_url if settings.serve == "redirect" else None,
            cache_max_age=settings.cache_max_age,
        )
        try:
            await metadata.ensure_indexes()
        except StorageError as exc:  # MongoDB may be down at boot; storage then degrades
            log.warning("cannot create MongoDB indexes now (%s); retrying at the first write", exc)

    async def aclose(self) -> None:
        """Close the MongoDB client, then the boto3 client and its threads."""
        mongo, self._mongo = self._mongo, None
        if mongo is not None:
            await mongo.close()
        await self._s3.aclose()

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


def _check(settings: S3ResultStorage.Settings, *, has_collection: bool) -> None:
    """Refuse settings that could only fail later (ValueError → a ConfigError)."""
    if not settings.bucket:
        raise ValueError("bucket is required")
    if settings.serve == "redirect" and not settings.public_url:
        raise ValueError("serve: redirect needs public_url, e.g. https://cdn/{object_key}")
    if settings.public_url is not None and "{object_key}" not in settings.public_url:
        raise ValueError("public_url must contain {object_key}")
    if not (settings.metadata.uri or has_collection):
        raise ValueError("metadata.uri is required (or set THUMBOR_PY_MONGODB_URI)")
    try:
        check_object_key(settings.prefix)
    except StorageError as exc:
        raise ValueError(f"prefix: {exc}") from exc
