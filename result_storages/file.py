"""File result storage: the embedded default for one machine.

Layout under ``root``::

    ab/cd/<key>        the rendered bytes
    ab/cd/<key>.json   its metadata (content type, ETag, size, dimensions, times, source)
    sources/<sha256(source)>/<key>   an empty marker per variant, so purge needs no scan

Every file is written to a temporary name and renamed into place, so a reader never sees a
half-written file. All I/O runs in the executor, never on the event loop.

A read error (permission denied, too many open files, an I/O error) never deletes
anything: it raises :class:`~thumbor_py.errors.StorageUnavailableError` and the guard
degrades. Only a result that is really corrupt (metadata that does not parse, a body whose
length is not the recorded size) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from thumbor_py.errors import StorageUnavailableError
from thumbor_py.files import write_atomically
from thumbor_py.plugins import PluginContext, StoredResult

T = TypeVar("T")


class FileResultStorage:
    """Stores variants as files under one root folder."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``result_storage.settings`` for the ``file`` result storage."""

        root: str = "./result_storage"

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self._root = Path(settings.root).expanduser()
        self._context = context

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._context.executor, function, *args)
        except OSError as exc:
            # One line for the log: the error and the file, not a traceback.
            what = exc.strerror or type(exc).__name__
            raise StorageUnavailableError(f"file storage: {what}: {exc.filename}") from exc

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self._root / key[:2] / key[2:4]
        return folder / key, folder / f"{key}.json"

    def _source_folder(self, source: str) -> Path:
        return self._root / "sources" / hashlib.sha256(source.encode("utf-8")).hexdigest()

    async def get(self, key: str) -> StoredResult | None:
        """The metadata of ``key``, or None when absent or expired."""
        return await self._run(self._get, key)

    def _get(self, key: str) -> StoredResult | None:
        _, meta_path = self._paths(key)
        try:
            text = meta_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            result = _from_document(json.loads(text))
        except (ValueError, TypeError, KeyError, AttributeError):
            self._delete(key)  # corrupt metadata is as good as none
            return None
        if result.expires_at is not None and result.expires_at <= datetime.now(UTC):
            self._delete(key)
            return None
        return result

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """The stored bytes, or None (and the metadata forgotten) if the file is gone."""
        return await self._run(self._read, key, result.size)

    def _read(self, key: str, size: int) -> bytes | None:
        data_path, _ = self._paths(key)
        try:
            data = data_path.read_bytes()
        except FileNotFoundError:
            self._delete(key)
            return None
        if len(data) != size:
            self._delete(key)  # truncated or overwritten: corrupt
            return None
        return data

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        """Write the bytes, then the metadata, then the source marker."""
        await self._run(self._put, key, result, data)

    def _put(self, key: str, result: StoredResult, data: bytes) -> None:
        data_path, meta_path = self._paths(key)
        write_atomically(data_path, data)
        # The recorded size is what was written: a body of another length is corrupt.
        document = _to_document(replace(result, size=len(data)))
        write_atomically(meta_path, json.dumps(document).encode("utf-8"))
        marker = self._source_folder(result.source) / key
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    async def delete(self, key: str) -> None:
        """Remove one variant's files."""
        await self._run(self._delete, key)

    def _delete(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def purge(self, source: str) -> int:
        """Remove every variant of ``source``."""
        return await self._run(self._purge, source)

    def _purge(self, source: str) -> int:
        folder = self._source_folder(source)
        try:
            markers = list(folder.iterdir())
        except FileNotFoundError:
            return 0
        for marker in markers:
            self._delete(marker.name)
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
        return len(markers)


def _to_document(result: StoredResult) -> dict[str, Any]:
    document = asdict(result)
    for name in ("created_at", "expires_at"):
        value = document[name]
        document[name] = value.isoformat() if value is not None else None
    return document


def _from_document(document: dict[str, Any]) -> StoredResult:
    if not isinstance(document, dict):
        raise TypeError("metadata is not a JSON object")
    for name in ("created_at", "expires_at"):
        value = document.get(name)
        document[name] = datetime.fromisoformat(value) if value else None
    return StoredResult(**document)
