"""One tenant's image repository: ids, the original storage, the checks and the purge seam.

An id is Thumbor's: 32 hex digits, then ``/`` and the ``Slug`` the client gave (cleaned).
The original lives at ``prefix + id`` in the original storage, which is where the loaders
read: ``source_prefix + prefix + id`` is the image path of Thumbor and Cloudimage URLs.
Replacing or deleting an original purges every variant of it through
:meth:`thumbor_py.coherence.Coherence.purge` (the same seam as ``DELETE /admin/results``):
after the answer, no worker of any replica serves the old original.

With a record store, every original here has one :class:`ImageRecord` (id: the id's uuid
part). Writes go object first, then record: a create whose record fails removes its object
again and answers 503; if that removal fails too, ``thumbor-py housekeep`` records the
leftover later (it is never unfindable for long). A PUT whose record update fails answers
503 with the new bytes stored (a retried PUT corrects the record); a DELETE removes the
object, purges, then drops the record (a record left by a failure there is swept as "record
without an object").
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

from thumbor_py import metrics
from thumbor_py.config import ImagingConfig
from thumbor_py.errors import HttpError, SourceNotFoundError, StorageError
from thumbor_py.imaging import formats
from thumbor_py.repository.auth import KeyRing
from thumbor_py.repository.checks import ImageInfo, UploadLimits, check_size, inspect
from thumbor_py.repository.originals import OriginalStorage
from thumbor_py.repository.records import ImageRecord, ImageRecords

_ID = re.compile(r"[0-9a-f]{32}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?")
_SLUG_DROP = re.compile(r"[^A-Za-z0-9._-]+")

Purge = Callable[[str], Awaitable[int]]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositorySettings:
    """One repository's resolved settings."""

    name: str
    prefix: str
    source_prefix: str
    allow_put: bool
    allow_delete: bool
    limits: UploadLimits
    # For the URLs answered with a record: the tenant's key (None = /unsafe/), its presets.
    signing_key: str | None = None
    presets: Mapping[str, str] = field(default_factory=dict)
    srcset_widths: tuple[int, ...] = ()
    upload_page: bool = False


def new_id(slug: str | None) -> str:
    """A fresh id: Thumbor's uuid hex, then the cleaned ``Slug`` when one is left."""
    cleaned = _SLUG_DROP.sub("-", slug or "").strip(".-_")[:100]
    return f"{uuid.uuid4().hex}/{cleaned}" if cleaned else uuid.uuid4().hex


def record_id(image_id: str) -> str:
    """The record id of an upload-API original: its uuid (the slug is only in the key)."""
    return image_id.partition("/")[0]


def is_id(text: str) -> bool:
    """Whether ``text`` is an id this server could have made (``uuid[/slug]``)."""
    return _ID.fullmatch(text) is not None


def parse_id(text: str) -> str:
    """``text`` when it is an id this server could have made; else 404."""
    if not _ID.fullmatch(text):
        raise SourceNotFoundError("no such image")
    return text


class Repository:
    """The upload API's operations for one tenant (or the server without tenants)."""

    def __init__(
        self,
        settings: RepositorySettings,
        *,
        storage: OriginalStorage,
        keys: KeyRing,
        imaging: ImagingConfig,
        executor: Executor | None,
        purge: Purge,
        records: ImageRecords | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self.keys = keys
        self.storage = storage
        self.imaging = imaging
        self.executor = executor
        self._purge = purge

    async def purge(self, source: str) -> int:
        """Purge every variant of ``source`` (an image path of this repository)."""
        return await self._purge(source)

    def source(self, image_id: str) -> str:
        """The image path that Thumbor and Cloudimage URLs give for ``image_id``."""
        return self.settings.source_prefix + self.settings.prefix + image_id

    def check_size(self, size: int) -> None:
        """412 for a body over the limit, before it is read or decoded."""
        check_size(size, self.settings.limits)

    async def describe(self, data: bytes, *, counted: bool = True) -> tuple[ImageInfo, str]:
        """The checks of :func:`checks.inspect` and the sha256 of ``data``, in one trip off
        the event loop; refusals are counted (unless not ``counted``: housekeeping)."""

        def check() -> tuple[ImageInfo, str]:
            info = inspect(data, self.imaging, self.settings.limits)
            return info, hashlib.sha256(data).hexdigest()

        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, check)
        except HttpError as exc:
            if counted:
                metrics.REPOSITORY.labels(operation="refused", outcome=str(exc.status)).inc()
            raise

    def record(
        self, image_id: str, data: bytes, described: tuple[ImageInfo, str], owner: str | None
    ) -> ImageRecord:
        """The record of the upload-API original ``image_id`` (no focal point)."""
        info, digest = described
        key = self.settings.prefix + image_id
        return ImageRecord.of_image(
            id=record_id(image_id),
            tenant=self.settings.name,
            key=key,
            source=self.settings.source_prefix + key,
            size=len(data),
            info=info,
            sha256=digest,
            owner=owner,
        )

    async def create(self, data: bytes, slug: str | None, owner: str | None = None) -> str:
        """Store a new original, then its record (when records are kept); its id."""
        described = await self.describe(data)
        image_id = new_id(slug)
        key = self.settings.prefix + image_id
        await self.storage.put(key, data, described[0].content_type)
        if self.records is not None:
            try:
                await self.records.put(self.record(image_id, data, described, owner))
            except StorageError:
                await self._undo(key)
                raise
        metrics.REPOSITORY.labels(operation="upload", outcome="created").inc()
        return image_id

    async def _undo(self, key: str) -> None:
        """Remove an original whose record could not be written (best effort)."""
        try:
            await self.storage.delete(key)
        except StorageError as exc:
            log.warning("original %s left without a record for housekeeping (%s)", key, exc)

    async def read(self, image_id: str) -> tuple[bytes, str]:
        """The original and its content type; 404 when there is none."""
        original = await self.storage.get(self.settings.prefix + parse_id(image_id))
        if original is None:
            raise SourceNotFoundError("no such image")
        loop = asyncio.get_running_loop()
        content_type = await loop.run_in_executor(self.executor, _content_type, original.data)
        return original.data, content_type

    async def replace(self, image_id: str, data: bytes, owner: str | None = None) -> None:
        """Replace an existing original (404 when there is none), purge its variants, then
        update its record (a missing one is written, with ``owner``)."""
        key = self.settings.prefix + parse_id(image_id)
        described = await self.describe(data)
        if await self.storage.get(key) is None:
            raise SourceNotFoundError("no such image")
        await self.storage.put(key, data, described[0].content_type)
        await self._purge(self.source(image_id))
        if self.records is not None:
            fresh = self.record(image_id, data, described, owner)
            old = await self.records.get(self.settings.name, fresh.id)
            if old is not None:  # keep what only the record knows; new bytes, new time
                fresh = dataclasses.replace(
                    fresh,
                    owner=old.owner,
                    tags=old.tags,
                    title=old.title,
                    alt=old.alt,
                    created_at=old.created_at,
                )
            await self.records.put(fresh)
        metrics.REPOSITORY.labels(operation="upload", outcome="replaced").inc()

    async def delete(self, image_id: str) -> None:
        """Remove an original (404 when there is none), purge its variants, drop its record."""
        key = self.settings.prefix + parse_id(image_id)
        existed = await self.storage.delete(key)
        if existed:
            await self._purge(self.source(image_id))
        if self.records is not None:  # only the record of this key (not of another slug)
            record = await self.records.get(self.settings.name, record_id(image_id))
            if record is not None and record.key == key:
                await self.records.delete(self.settings.name, record.id)
        if not existed:
            raise SourceNotFoundError("no such image")
        metrics.REPOSITORY.labels(operation="delete", outcome="deleted").inc()


def _content_type(data: bytes) -> str:
    """The type of a stored original, from its header only."""
    try:
        opened = formats.open_image(data, max_pixels=2**62, respect_orientation=False)
    except HttpError:  # put there by something else, unreadable: served as opaque bytes
        return "application/octet-stream"
    return formats.CONTENT_TYPES.get(opened.format, "application/octet-stream")
