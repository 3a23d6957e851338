"""Example loader plugin: serves originals from the members of one ZIP archive.

Not part of thumbor-py: it shows everything a loader plugin needs. Put this file on
``PYTHONPATH`` and name it in YAML as ``use: zip_loader:ZipLoader``.
"""

from __future__ import annotations

import asyncio
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from thumbor_py.errors import SourceNotFoundError, SourceTooLargeError, UpstreamError
from thumbor_py.plugins import PluginContext, Source


class ZipLoader:
    """Loads ``<member name>`` from one ZIP archive, opened once per process."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``loader.settings`` for this plugin; every field needs a default or the YAML key."""

        path: str
        prefix: str = ""

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        # Runs at start-up: check settings here; a ValueError becomes a ConfigError.
        if not settings.path.endswith(".zip"):
            raise ValueError(f"path {settings.path!r} is not a .zip file")
        self._settings = settings
        self._context = context
        self._archive: zipfile.ZipFile | None = None

    async def start(self) -> None:
        """Open the archive once per process (file I/O: off the event loop)."""
        loop = asyncio.get_running_loop()
        self._archive = await loop.run_in_executor(
            self._context.executor, zipfile.ZipFile, self._settings.path
        )

    async def aclose(self) -> None:
        """Close the archive at shutdown."""
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    async def load(self, source: str) -> Source:
        """Read one member; every failure is one of the documented errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._context.executor, self._read, source)

    def _read(self, source: str) -> Source:
        if self._archive is None:
            raise RuntimeError("ZipLoader.start() was not awaited")
        name = self._settings.prefix + source.lstrip("/")
        try:
            info = self._archive.getinfo(name)
        except KeyError as exc:
            raise SourceNotFoundError(f"source not found: {source}") from exc
        if info.is_dir():
            raise SourceNotFoundError(f"source not found: {source}")
        # Refuse before decompressing: the archive's directory says how big the member is.
        if info.file_size > self._context.max_source_bytes:
            raise SourceTooLargeError(
                f"source is {info.file_size} bytes, over the "
                f"{self._context.max_source_bytes}-byte limit"
            )
        try:
            data = self._archive.read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise UpstreamError(f"archive member is corrupt: {source}") from exc
        return Source(
            data=data,
            etag=f'"{info.CRC:08x}-{info.file_size:x}"',
            last_modified=datetime(*info.date_time, tzinfo=UTC),
        )
