"""Image records without MongoDB: one JSON object per record in the originals' bucket.

Used when ``repository.metadata.uri`` is not set and the original storage is S3, so that the
direct-upload flow works with nothing but an S3 endpoint. Records live at
``<storage prefix><records prefix><tenant>/<id>.json`` (the id: a sha256, or the 32-hex uuid
of an upload-API original). Reads and writes are single
objects; listing by owner or tag scans the tenant's records in id order (fine for thousands,
use MongoDB beyond). ``add`` is read-then-write: two concurrent first registrations of the same
bytes both succeed, the later metadata wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from thumbor_py.errors import StorageUnavailableError
from thumbor_py.repository.originals import S3OriginalStorage
from thumbor_py.repository.records import MAX_PAGE, ImageRecord

_ID = re.compile(r"[0-9a-f]{64}|[0-9a-f]{32}")


class BucketRecords:
    """:class:`~thumbor_py.repository.records.ImageRecords` as JSON objects in a bucket."""

    def __init__(self, storage: S3OriginalStorage, prefix: str = "records/") -> None:
        self._storage = storage
        self._prefix = prefix

    def _key(self, tenant: str, image_id: str) -> str:
        return f"{self._prefix}{tenant}/{image_id}.json"

    async def add(self, record: ImageRecord) -> tuple[ImageRecord, bool]:
        """Write ``record`` unless one with the same content exists (then that one)."""
        existing = await self.get(record.tenant, record.id)
        if existing is not None:
            return existing, False
        await self.put(record)
        return record, True

    async def put(self, record: ImageRecord) -> None:
        """Write ``record`` (replacing the one of the same id)."""
        if not _ID.fullmatch(record.id):
            raise ValueError(f"not a record id: {record.id!r}")
        body = json.dumps(record.document(), default=_json_default).encode()
        await self._storage.put(self._key(record.tenant, record.id), body, "application/json")

    async def get(self, tenant: str, image_id: str) -> ImageRecord | None:
        """The record, or None (also for an id that cannot be one)."""
        if not _ID.fullmatch(image_id):
            return None
        stored = await self._storage.get(self._key(tenant, image_id))
        if stored is None:
            return None
        try:
            return ImageRecord.from_document(json.loads(stored.data))
        except (ValueError, TypeError, KeyError) as exc:
            raise StorageUnavailableError("image records: a record object is unreadable") from exc

    async def delete(self, tenant: str, image_id: str) -> None:
        """Remove the record object."""
        if _ID.fullmatch(image_id):
            await self._storage.delete(self._key(tenant, image_id))

    async def _ids(self, tenant: str) -> list[str]:
        folder = f"{self._prefix}{tenant}/"
        names = (
            key.removeprefix(folder).removesuffix(".json")
            for key, _ in await self._storage.keys(folder)
        )
        return sorted(name for name in names if _ID.fullmatch(name))

    async def page(
        self,
        tenant: str,
        *,
        owner: str | None = None,
        tag: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[list[ImageRecord], str | None]:
        """Up to ``limit`` matching records after ``after`` (by id); the next cursor."""
        size = max(1, min(limit, MAX_PAGE))
        found: list[ImageRecord] = []
        for image_id in await self._ids(tenant):
            if after and image_id <= after:
                continue
            record = await self.get(tenant, image_id)
            if record is None or (owner is not None and record.owner != owner):
                continue
            if tag is not None and tag not in record.tags:
                continue
            found.append(record)
            if len(found) > size:
                break
        more = len(found) > size
        return found[:size], (found[size - 1].id if more else None)

    async def all_keys(self, tenant: str) -> Sequence[tuple[str, str]]:
        """``(id, key)`` of every record of ``tenant``."""
        keys = []
        for image_id in await self._ids(tenant):
            record = await self.get(tenant, image_id)
            if record is not None:
                keys.append((record.id, record.key))
        return keys


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
