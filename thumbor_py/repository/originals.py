"""Original storages: where uploaded originals are kept, in the place the loaders read.

:class:`OriginalStorage` is the small contract; :class:`FileOriginalStorage` writes under a
folder (the ``file`` loader's root) and :class:`S3OriginalStorage` into a bucket (the ``s3``
loader's bucket and prefix) through the shared :class:`~thumbor_py.s3client.S3Client`.
Keys are relative (``originals/<id>``); each storage refuses keys that could leave its place.
Every blocking call runs off the event loop; library errors become
:class:`~thumbor_py.errors.StorageUnavailableError` (503) at this boundary.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from botocore.exceptions import BotoCoreError, ClientError

from thumbor_py.errors import StorageKeyError, StorageUnavailableError
from thumbor_py.files import write_atomically
from thumbor_py.s3client import S3Client, S3Settings, describe, error_code

T = TypeVar("T")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True, slots=True)
class Original:
    """The bytes of one original."""

    data: bytes


@runtime_checkable
class OriginalStorage(Protocol):
    """Keeps originals by relative key. ``get`` returns None for a missing key; ``delete``
    says whether something was there. Failures raise ``StorageUnavailableError``; a key with
    ``..``, an empty segment or a control character raises ``StorageKeyError``."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""

    async def get(self, key: str) -> Original | None:
        """The original under ``key``, or None."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""


def check_key(key: str) -> str:
    """``key`` when it is a safe relative key (no dot segments, no control characters)."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 for c in key):
        raise StorageKeyError("original key is not a safe relative key")
    return key


class FileOriginalStorage:
    """Originals as files under ``root`` (written to a temporary file, then renamed)."""

    def __init__(self, root: Path, executor: Executor | None = None) -> None:
        self._root = root.expanduser()
        self._executor = executor

    def path(self, key: str) -> Path:
        """Where ``key`` lives; never outside the root (resolves symlinks: off the loop)."""
        root = self._root.resolve()
        path = (root / check_key(key)).resolve()
        if not path.is_relative_to(root):
            raise StorageKeyError("original key leaves the storage root")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write atomically: a reader sees the old original or the new one, never half."""
        check_key(key)
        await self._run(lambda: write_atomically(self.path(key), data))

    async def get(self, key: str) -> Original | None:
        """The file's bytes, or None when there is no such file."""
        check_key(key)
        data = await self._run(lambda: _read_or_none(self.path(key)))
        return None if data is None else Original(data)

    async def delete(self, key: str) -> bool:
        """Unlink the file; whether it existed."""
        check_key(key)
        return bool(await self._run(lambda: _unlink(self.path(key))))

    async def _run(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function)
        except OSError as exc:
            raise StorageUnavailableError(
                f"original storage failed: {errno.errorcode.get(exc.errno or 0, 'I/O error')}"
            ) from exc


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


class S3OriginalStorage:
    """Originals as objects in one bucket, under the settings' ``prefix``."""

    def __init__(self, settings: S3Settings, *, client: Any = None) -> None:
        if not settings.bucket:
            raise ValueError("the S3 original storage needs a bucket")
        self._bucket = settings.bucket
        self._prefix = settings.prefix
        self._s3 = S3Client(settings, client=client)

    async def start(self) -> None:
        """Create the client off the loop."""
        await self._s3.start()

    async def aclose(self) -> None:
        """Close the client and join its threads."""
        await self._s3.aclose()

    @property
    def bucket(self) -> str:
        """The bucket originals go to."""
        return self._bucket

    @property
    def client(self) -> S3Client:
        """The shared client (for bucket-level calls: lifecycle)."""
        return self._s3

    def object_key_prefix(self, prefix: str) -> str:
        """The bucket key prefix of relative ``prefix``."""
        return self._prefix + prefix

    def object_key(self, key: str) -> str:
        """The bucket key of ``key``."""
        return self._prefix + check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """One PutObject."""
        name = self.object_key(key)
        await self._call(
            lambda c: c.put_object(
                Bucket=self._bucket, Key=name, Body=data, ContentType=content_type
            )
        )

    async def get(self, key: str) -> Original | None:
        """One GetObject; None for a missing object."""
        name = self.object_key(key)
        data = await self._call(lambda c: _get_or_none(c, self._bucket, name))
        return None if data is None else Original(data)

    async def delete(self, key: str) -> bool:
        """HEAD then DeleteObject (S3 deletes say nothing of existence)."""
        name = self.object_key(key)
        return bool(await self._call(lambda c: _delete(c, self._bucket, name)))

    async def stat(self, key: str) -> tuple[int, float] | None:
        """The object's byte size and last-modified timestamp (one HEAD), or None."""
        name = self.object_key(key)
        return await self._call(lambda c: _stat_or_none(c, self._bucket, name))  # type: ignore[no-any-return]

    async def presigned_post(
        self, key: str, *, content_type: str, max_bytes: int, expires: int
    ) -> dict[str, Any]:
        """A browser-usable POST policy for ``key``: this content type, 1..max_bytes bytes,
        valid ``expires`` seconds (S3 enforces all three)."""
        name = self.object_key(key)
        conditions = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]

        def presign(client: Any) -> dict[str, Any]:
            answer: dict[str, Any] = client.generate_presigned_post(
                Bucket=self._bucket,
                Key=name,
                Fields={"Content-Type": content_type},
                Conditions=conditions,
                ExpiresIn=expires,
            )
            return answer

        return await self._call(presign)  # type: ignore[no-any-return]

    async def keys(self, prefix: str) -> list[tuple[str, float]]:
        """``(key, last modified as a timestamp)`` of every object under ``prefix`` (keys
        relative to the storage's own prefix)."""
        name = self._prefix + prefix

        def listing(client: Any) -> list[tuple[str, float]]:
            found = []
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=name
            ):
                for item in page.get("Contents", []):
                    key = str(item["Key"]).removeprefix(self._prefix)
                    found.append((key, item["LastModified"].timestamp()))
            return found

        return await self._call(listing)  # type: ignore[no-any-return]

    async def _call(self, function: Any) -> Any:
        try:
            return await self._s3.call(function)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailableError(f"original storage failed: {describe(exc)}") from exc


def _get_or_none(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in _MISSING_CODES:
            return None
        raise
    return bytes(answer["Body"].read())


def _stat_or_none(client: Any, bucket: str, key: str) -> tuple[int, float] | None:
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        return int(head["ContentLength"]), float(head["LastModified"].timestamp())
    except ClientError as exc:
        if error_code(exc) in _MISSING_CODES:
            return None
        raise


def _delete(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in _MISSING_CODES:
            return False
        raise
    client.delete_object(Bucket=bucket, Key=key)
    return True


def s3_settings(values: Mapping[str, object]) -> S3Settings:
    """The shared S3 fields of a settings mapping (a loader's own fields are left out)."""
    names = {f.name for f in fields(S3Settings)}
    return S3Settings(**{k: v for k, v in values.items() if k in names})  # type: ignore[arg-type]
