"""Plugins used by tests through the real plugin API (named as ``tests.fakes:Class``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import boto3

from loaders.file import FileLoader
from result_storages.mongodb import MongoMetadataStore
from result_storages.s3 import ComposedResultStorage, S3BlobStore
from tests.conftest import SAMPLES
from tests.result_storages.memory_collection import MemoryCollection
from thumbor_py.plugins import PluginContext, Source


class CountingLoader:
    """Loads from the samples folder, slowly if asked, counting every load."""

    instances: ClassVar[list[CountingLoader]] = []

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        delay: float = 0.0

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self._delay = settings.delay
        self._files = FileLoader(FileLoader.Settings(root=str(SAMPLES)), context)
        self.loads = 0
        CountingLoader.instances.append(self)

    async def load(self, source: str) -> Source:
        self.loads += 1
        await asyncio.sleep(self._delay)
        return await self._files.load(source)


class CountingBlobStore(S3BlobStore):
    """An S3 blob store that counts reads, to prove which requests touch the bucket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    async def get(self, object_key: str) -> bytes | None:
        self.reads += 1
        return await super().get(object_key)


class MotoMemoryResultStorage(ComposedResultStorage):
    """S3 objects on the moto server + MongoDB documents in the in-memory double."""

    instances: ClassVar[list[MotoMemoryResultStorage]] = []

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        endpoint_url: str
        bucket: str
        public_url: str | None = None

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        client = boto3.client("s3", endpoint_url=settings.endpoint_url, region_name="us-east-1")
        self.counting_blobs = CountingBlobStore(client, settings.bucket, context.executor)
        self.collection = MemoryCollection()
        super().__init__(
            self.counting_blobs, MongoMetadataStore(self.collection), public_url=settings.public_url
        )
        MotoMemoryResultStorage.instances.append(self)
