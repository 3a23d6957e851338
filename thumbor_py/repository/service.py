"""One tenant's image repository: ids, the original storage, the checks and the purge seam.

An id is Thumbor's: 32 hex digits, then ``/`` and the ``Slug`` the client gave (cleaned).
The original lives at ``prefix + id`` in the original storage, which is where the loaders
read: ``source_prefix + prefix + id`` is the image path of Thumbor and Cloudimage URLs.
Replacing or deleting an original purges every variant of it through
:meth:`thumbor_py.coherence.Coherence.purge` (the same seam as ``DELETE /admin/results``):
after the answer, no worker of any replica serves the old original.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

from thumbor_py import metrics
from thumbor_py.config import ImagingConfig
from thumbor_py.errors import HttpError, SourceNotFoundError
from thumbor_py.imaging import formats
from thumbor_py.repository.auth import KeyRing
from thumbor_py.repository.checks import ImageInfo, UploadLimits, check_size, inspect
from thumbor_py.repository.originals import OriginalStorage

_ID = re.compile(r"[0-9a-f]{32}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?")
_SLUG_DROP = re.compile(r"[^A-Za-z0-9._-]+")

Purge = Callable[[str], Awaitable[int]]


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
    ) -> None:
        self.settings = settings
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

    async def inspect(self, data: bytes) -> ImageInfo:
        """The checks of :func:`checks.inspect`, off the event loop; refusals are counted."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.executor, inspect, data, self.imaging, self.settings.limits
            )
        except HttpError as exc:
            metrics.REPOSITORY.labels(operation="refused", outcome=str(exc.status)).inc()
            raise

    async def create(self, data: bytes, slug: str | None) -> str:
        """Store a new original; its id."""
        info = await self.inspect(data)
        image_id = new_id(slug)
        await self.storage.put(self.settings.prefix + image_id, data, info.content_type)
        metrics.REPOSITORY.labels(operation="upload", outcome="created").inc()
        return image_id

    async def read(self, image_id: str) -> tuple[bytes, str]:
        """The original and its content type; 404 when there is none."""
        original = await self.storage.get(self.settings.prefix + parse_id(image_id))
        if original is None:
            raise SourceNotFoundError("no such image")
        loop = asyncio.get_running_loop()
        content_type = await loop.run_in_executor(self.executor, _content_type, original.data)
        return original.data, content_type

    async def replace(self, image_id: str, data: bytes) -> None:
        """Replace an existing original (404 when there is none), then purge its variants."""
        key = self.settings.prefix + parse_id(image_id)
        info = await self.inspect(data)
        if await self.storage.get(key) is None:
            raise SourceNotFoundError("no such image")
        await self.storage.put(key, data, info.content_type)
        await self._purge(self.source(image_id))
        metrics.REPOSITORY.labels(operation="upload", outcome="replaced").inc()

    async def delete(self, image_id: str) -> None:
        """Remove an original (404 when there is none), then purge its variants."""
        if not await self.storage.delete(self.settings.prefix + parse_id(image_id)):
            raise SourceNotFoundError("no such image")
        await self._purge(self.source(image_id))
        metrics.REPOSITORY.labels(operation="delete", outcome="deleted").inc()


def _content_type(data: bytes) -> str:
    """The type of a stored original, from its header only."""
    try:
        opened = formats.open_image(data, max_pixels=2**62, respect_orientation=False)
    except HttpError:  # put there by something else, unreadable: served as opaque bytes
        return "application/octet-stream"
    return formats.CONTENT_TYPES.get(opened.format, "application/octet-stream")
