"""A result storage made of a blob store (the bytes) and a metadata store (the documents).

Each part is replaceable and testable on its own; this module keeps the two consistent when
one write fails half-way:

- ``put`` writes the document first, marked *pending* with a token of its own, then
  uploads the object, then completes the document. A pending document is never a hit, but
  ``purge`` finds it (and deletes its object). If the document was purged while the object
  was uploading, the writer deletes the object it just wrote.
- ``read`` deletes a document whose object turned out to be missing.
- ``purge`` also lists the source's folder in the bucket, so an object whose document was
  never written, expired or lost is found and deleted too.

Object keys are readable: ``<prefix><source>/<result key>.<ext>``, for example
``results/photos/cat.jpg/3fa2…e9.webp``; a source URL's ``://`` becomes ``/``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Protocol
from urllib.parse import quote

from thumbor_py.errors import StorageKeyError
from thumbor_py.plugins import MetadataStore, StoredResult

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/avif": "avif",
    "application/json": "json",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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

    async def keys_in(self, folder: str) -> list[str]:
        """The keys of the objects directly in ``folder`` (which ends with ``/``)."""
        ...


def _readable_segment(segment: str) -> str:
    if segment in ("", ".", ".."):
        return segment.replace(".", "%2E") or "_"
    return _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", segment)


def source_folder(prefix: str, source: str) -> str:
    """The folder (ending with ``/``) holding every object of ``source``.

    Control characters and dot or empty segments are escaped, so no source yields a key
    that a URL or a proxy would rewrite.
    """
    readable = source.replace("://", "/").lstrip("/") or "_"
    return prefix + "/".join(_readable_segment(s) for s in readable.split("/")) + "/"


def object_key_for(prefix: str, source: str, key: str, content_type: str) -> str:
    """The readable object key of a variant."""
    return check_object_key(
        f"{source_folder(prefix, source)}{key}.{EXTENSIONS.get(content_type, 'bin')}"
    )


def check_object_key(object_key: str) -> str:
    """``object_key`` unchanged, or :class:`StorageKeyError` for control characters or
    ``.``/``..`` segments (a prefix or a plugin may produce them; our derivation does not)."""
    if _CONTROL.search(object_key):
        raise StorageKeyError("object key holds a control character")
    if any(segment in (".", "..") for segment in object_key.split("/")):
        raise StorageKeyError("object key holds a '.' or '..' segment")
    return object_key


def public_url(template: str, object_key: str, key: str) -> str:
    """The redirect target: ``template`` with the object key percent-encoded per segment."""
    encoded = "/".join(
        quote(segment, safe="") for segment in check_object_key(object_key).split("/")
    )
    return template.format(object_key=encoded, key=key)


class ComposedResultStorage:
    """A :class:`~thumbor_py.plugins.ResultStorage` over a blob store and a metadata store."""

    def __init__(
        self,
        blobs: BlobStore,
        metadata: MetadataStore,
        *,
        prefix: str = "results/",
        public_url: str | None = None,
        cache_max_age: int = 86400,
    ) -> None:
        check_object_key(prefix)
        self.blobs = blobs
        self.metadata = metadata
        self._prefix = prefix
        self._public_url = public_url
        self._cache_max_age = cache_max_age

    async def get(self, key: str) -> StoredResult | None:
        """The completed document for ``key``; with a public URL template, where to redirect."""
        result = await self.metadata.find(key)
        if result is None or self._public_url is None or result.object_key is None:
            return result
        return replace(result, url=public_url(self._public_url, result.object_key, key))

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """The object's bytes; a vanished object also removes its document."""
        if result.object_key is None:
            await self.metadata.delete(key)
            return None
        data = await self.blobs.get(check_object_key(result.object_key))
        if data is None:
            await self.metadata.delete(key)
        return data

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        """Pending document, then the object, then the document completed."""
        object_key = object_key_for(self._prefix, result.source, key, result.content_type)
        max_age = self._cache_max_age if result.max_age is None else result.max_age
        token = uuid.uuid4().hex
        await self.metadata.begin(key, replace(result, object_key=object_key, url=None), token)
        await self.blobs.put(object_key, data, result.content_type, max_age)
        if not await self.metadata.complete(key, token):
            # Purged while uploading: this object must not outlive its document.
            await self.blobs.delete(object_key)

    async def delete(self, key: str) -> None:
        """Delete the document, then the object (a pending variant's object is left to purge)."""
        result = await self.metadata.find(key)
        await self.metadata.delete(key)
        if result is not None and result.object_key is not None:
            await self.blobs.delete(check_object_key(result.object_key))

    async def purge(self, source: str) -> int:
        """Delete every variant of ``source``, pending ones and undocumented objects included.

        Each variant loses its document before its object, so a failure half-way leaves an
        object that the next purge finds by listing the source's folder.
        """
        variants: dict[str, set[str]] = {}
        for key, documented in await self.metadata.keys_for_source(source):
            variants.setdefault(key, set()).update([documented] if documented else [])
        folder = source_folder(self._prefix, source)
        for listed in await self.blobs.keys_in(folder):
            variants.setdefault(listed[len(folder) :].rsplit(".", 1)[0], set()).add(listed)
        for key, object_keys in variants.items():
            await self.metadata.delete(key)
            for object_key in sorted(object_keys):
                await self.blobs.delete(check_object_key(object_key))
        return len(variants)
