"""Filesystem loader: serves originals from one root folder, never from outside it."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from thumbor_py.errors import (
    SourceForbiddenError,
    SourceNotFoundError,
    SourceTooLargeError,
)
from thumbor_py.plugins import PluginContext, Source


def resolve_inside(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse anything that ends up outside it.

    ``root`` must already be resolved. Symlinks are followed before the check, so a link that
    points out of the root is refused like ``..`` is.
    """
    if "\x00" in relative:
        raise SourceForbiddenError("source path contains a NUL byte")
    # Like Thumbor, a leading "/" means the root itself: "/etc/passwd" is root/etc/passwd.
    candidate = (root / relative.lstrip("/")).resolve()
    if not candidate.is_relative_to(root):
        raise SourceForbiddenError("source path escapes the loader root")
    return candidate


class FileLoader:
    """Loads ``root/<source>``; the source arrives percent-decoded, before the root check."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``loader.settings`` for the ``file`` loader."""

        root: str = "./samples"

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        root = Path(settings.root).expanduser()
        if not root.is_dir():
            raise ValueError(f"root {settings.root!r} is not a folder")
        self._root = root.resolve()
        self._context = context

    @property
    def root(self) -> Path:
        """The resolved root folder."""
        return self._root

    async def load(self, source: str) -> Source:
        """Read the file off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._context.executor, self._read, source)

    def _read(self, source: str) -> Source:
        # ``source`` was percent-decoded once by the URL parser, before this check, so
        # "%2e%2e" arrives here as ".." and is refused like it.
        decoded = source
        path = resolve_inside(self._root, decoded)
        if not path.exists():
            # Thumbor's fallback for files whose names really contain "%xx".
            literal = resolve_inside(self._root, quote(decoded, safe="/"))
            path = literal if literal.exists() else path
        try:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise SourceNotFoundError(f"source not found: {decoded}")
                if info.st_size > self._context.max_source_bytes:
                    raise SourceTooLargeError(
                        f"source is {info.st_size} bytes, over the "
                        f"{self._context.max_source_bytes}-byte limit"
                    )
                data = handle.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise SourceNotFoundError(f"source not found: {decoded}") from exc
        except PermissionError as exc:
            raise SourceNotFoundError(f"source not readable: {decoded}") from exc
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        return Source(
            data=data,
            etag=f'"{info.st_mtime_ns:x}-{info.st_size:x}"',
            last_modified=modified,
        )
