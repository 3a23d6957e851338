"""Direct uploads: a presigned POST into the tenant's temporary prefix, then registration.

The bytes never pass through the server on the way in: ``presign`` answers a POST policy
(content type, 1..max bytes, short expiry, all enforced by S3) for a fresh temporary key;
``register`` checks the temporary object with the renderer's own decoding and limits, stores
it under a content-addressed key (``prefix + sha256 + .ext``: identical uploads are stored
once), records it, deletes the temporary object and answers the record with ready URLs.
A temporary key belongs to one tenant (its name is in the key), so no other tenant's key can
register it; once registered it is gone and its id is marked as used, so a second
registration of it (even after the still-valid POST was replayed) is a 404. The upload
id starts with the permission's expiry (hex seconds): the server itself refuses an object
written after it (a store that does not enforce POST policies, like some S3 emulators) and a
registration later than one more ``upload_expires`` after it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from thumbor_py import metrics
from thumbor_py.builder import build_url
from thumbor_py.errors import BadRequestError, ConflictError, HttpError, SourceNotFoundError
from thumbor_py.repository.checks import ImageInfo
from thumbor_py.repository.focal import focal_box
from thumbor_py.repository.originals import S3OriginalStorage
from thumbor_py.repository.records import ImageRecord, ImageRecords
from thumbor_py.repository.service import Repository
from thumbor_py.srcset import srcset

_UPLOAD_ID = "0123456789abcdef"
# Clock skew allowed between this server and the bucket when comparing times.
SKEW = 5.0
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "AVIF": "avif"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Metadata:
    """What a client may say about an image when registering it."""

    title: str | None = None
    alt: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    focal_point: tuple[float, float] | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Metadata:
        """From a JSON body; 400 naming the first bad field."""
        text = {name: _text(body.get(name), name, 500) for name in ("title", "alt", "owner")}
        tags = body.get("tags") or []
        if not isinstance(tags, list) or len(tags) > 50:
            raise BadRequestError("tags: expected a list of at most 50 strings")
        clean = tuple(dict.fromkeys(_text(tag, "tags[]", 100) or "" for tag in tags))
        return cls(**text, tags=tuple(t for t in clean if t), focal_point=_focal(body))


def _text(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequestError(f"{name}: expected a string of at most {limit} characters")
    return value


def _focal(body: Mapping[str, Any]) -> tuple[float, float] | None:
    point = body.get("focal_point")
    if point is None:
        return None
    if not isinstance(point, Mapping):
        raise BadRequestError("focal_point: expected {x, y} as fractions of width and height")
    x, y = point.get("x"), point.get("y")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
    if not numbers or not (0 <= float(x) <= 1 and 0 <= float(y) <= 1):  # type: ignore[arg-type]
        raise BadRequestError("focal_point: x and y must be numbers from 0 to 1")
    return float(x), float(y)  # type: ignore[arg-type]


class DirectUploads:
    """Presign and register for one repository (its storage must be S3)."""

    def __init__(
        self,
        repository: Repository,
        records: ImageRecords | None,
        *,
        temporary_prefix: str,
        expires: int,
        content_types: tuple[str, ...],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.repository = repository
        self.record_store = records
        self.temporary_prefix = temporary_prefix
        self.expires = expires
        self._content_types = content_types

    def _storage(self) -> S3OriginalStorage:
        storage = self.repository.storage
        if not isinstance(storage, S3OriginalStorage):
            raise ConflictError("direct uploads need an S3 original storage")
        return storage

    def records(self) -> ImageRecords:
        """The record store; 409 when none is configured."""
        if self.record_store is None:
            raise ConflictError("no image records are configured (repository.metadata.uri)")
        return self.record_store

    def temporary_key(self, upload_id: str) -> str:
        """The temporary key of ``upload_id`` (this tenant's only); 404 for a malformed id."""
        if len(upload_id) != 32 or any(c not in _UPLOAD_ID for c in upload_id):
            raise SourceNotFoundError("no such upload")
        return f"{self.temporary_prefix}{self.repository.settings.name}/{upload_id}"

    def used_key(self, upload_id: str) -> str:
        """The marker of a registered upload id (under the temporary prefix, so the bucket's
        lifecycle rule removes it with the temporaries)."""
        return f"{self.temporary_prefix}.registered/{self.repository.settings.name}/{upload_id}"

    def _check_times(self, upload_id: str, written_at: float) -> None:
        """404 for an object written after its permission expired, or registered too late."""
        expires_at = int(upload_id[:10], 16)
        if written_at > expires_at + SKEW or self._clock() > expires_at + self.expires + SKEW:
            raise SourceNotFoundError("no such upload (its permission expired)")

    async def presign(self, content_type: object) -> dict[str, Any]:
        """A presigned POST for one upload of ``content_type``."""
        if content_type not in self._content_types:
            raise BadRequestError(f"content_type: expected one of {', '.join(self._content_types)}")
        self.records()
        expires_at = int(self._clock()) + self.expires
        upload_id = f"{expires_at:010x}{uuid.uuid4().hex[:22]}"
        limit = self.repository.settings.limits.max_bytes
        post = await self._storage().presigned_post(
            self.temporary_key(upload_id),
            content_type=str(content_type),
            max_bytes=limit,
            expires=self.expires,
        )
        metrics.REPOSITORY.labels(operation="presign", outcome="issued").inc()
        return {
            "upload_id": upload_id,
            "url": post["url"],
            "fields": post["fields"],
            "max_bytes": limit,
            "expires_at": expires_at,
        }

    async def register(self, upload_id: str, metadata: Metadata) -> tuple[ImageRecord, bool]:
        """Check, store by content, record, and drop the temporary object."""
        records, storage = self.records(), self._storage()
        temporary = self.temporary_key(upload_id)
        stat = await storage.stat(temporary)
        if stat is None:
            raise SourceNotFoundError("no such upload (expired, registered, or never sent)")
        try:
            self._check_times(upload_id, stat[1])
            if await storage.stat(self.used_key(upload_id)) is not None:
                raise SourceNotFoundError("no such upload (already registered: a replay)")
            self.repository.check_size(stat[0])
            original = await storage.get(temporary)
            if original is None:
                raise SourceNotFoundError("no such upload (registered meanwhile)")
            info, digest = await self.repository.describe(original.data, counted=False)
        except HttpError as exc:
            await storage.delete(temporary)  # refused: nothing to keep
            metrics.REPOSITORY.labels(operation="refused", outcome=str(exc.status)).inc()
            raise
        record, created = await self._store(records, storage, original.data, info, digest, metadata)
        # The permission stays usable until it expires: mark its id as used, where the
        # permission cannot write (its policy names one key), so a replayed POST is refused.
        await storage.put(self.used_key(upload_id), b"", "application/octet-stream")
        await storage.delete(temporary)
        outcome = "created" if created else "duplicate"
        metrics.REPOSITORY.labels(operation="register", outcome=outcome).inc()
        return record, created

    async def _store(
        self,
        records: ImageRecords,
        storage: S3OriginalStorage,
        data: bytes,
        info: ImageInfo,
        digest: str,
        metadata: Metadata,
    ) -> tuple[ImageRecord, bool]:
        repository = self.repository
        key = f"{repository.settings.prefix}{digest}.{_EXTENSIONS[info.format]}"
        if await storage.stat(key) is None:
            await storage.put(key, data, info.content_type)
        record = ImageRecord.of_image(
            id=digest,
            tenant=repository.settings.name,
            key=key,
            source=repository.settings.source_prefix + key,
            size=len(data),
            info=info,
            sha256=digest,
            focal_point=metadata.focal_point,
            owner=metadata.owner,
            tags=metadata.tags,
            title=metadata.title,
            alt=metadata.alt,
        )
        return await records.add(record)

    async def delete(self, image_id: str) -> None:
        """Remove a registered image: its object, its record, then its variants."""
        records = self.records()
        tenant = self.repository.settings.name
        record = await records.get(tenant, image_id)
        if record is None:
            raise SourceNotFoundError("no such image")
        await self.repository.storage.delete(record.key)
        await records.delete(tenant, image_id)
        await self.repository.purge(record.source)
        metrics.REPOSITORY.labels(operation="delete", outcome="deleted").inc()


def urls(record: ImageRecord, repository: Repository) -> dict[str, Any]:
    """Ready-to-use URLs: a signed Thumbor URL per preset, a signed srcset, the original's.
    With a focal point, each URL carries ``focal()`` so ``smart`` crops keep it."""
    settings = repository.settings
    focal = _focal_filter(record)
    presets = {
        name: build_url(
            record.source, key=settings.signing_key, filters=[f"preset({name})", *focal]
        )
        for name in settings.presets
    }
    widths = settings.srcset_widths
    return {
        "presets": presets,
        "srcset": srcset(record.source, widths, key=settings.signing_key, smart=True, filters=focal)
        if widths
        else "",
        "smart": build_url(
            record.source,
            key=settings.signing_key,
            smart=True,
            width=640,
            height=640,
            filters=focal,
        ),
    }


def _focal_filter(record: ImageRecord) -> list[str]:
    box = focal_box(record)
    return [] if box is None else [f"focal({box})"]
