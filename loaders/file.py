"""Filesystem loader: serves originals from one root folder, never from outside it."""

from __future__ import annotations

import asyncio
import errno
import os
import posixpath
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

# O_NONBLOCK: opening a FIFO would otherwise wait for a writer, hanging the thread.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC

# OSErrors that mean "there is no readable file here": answered 404, never 500.
_MISSING_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EACCES,
        errno.EPERM,
    }
)


def resolve_inside(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse anything that ends up outside it.

    ``root`` must already be resolved. Symlinks are followed before the check, so a link that
    points out of the root is refused like ``..`` is.
    """
    if "\x00" in relative:
        raise SourceForbiddenError("source path contains a NUL byte")
    # Like Thumbor, a leading "/" means the root itself: "/etc/passwd" is root/etc/passwd.
    try:
        candidate = (root / relative.lstrip("/")).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise SourceNotFoundError("source not found") from exc
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
            raise ValueError(f"root {str(root.absolute())!r} is not a folder")
        self._root = root.resolve()
        self._root_text = str(self._root)
        self._root_prefix = self._root_text.rstrip("/") + "/"
        self._context = context

    @property
    def root(self) -> Path:
        """The resolved root folder."""
        return self._root

    def identity(self, source: str) -> str:
        """The file's path relative to the root, dot segments and extra slashes removed
        lexically (as Thumbor's ``abspath`` does): ``/a.jpg``, ``./a.jpg`` and ``b/../a.jpg``
        are one original. No I/O; a path that climbs above the root is refused."""
        if "\x00" in source:
            raise SourceForbiddenError("source path contains a NUL byte")
        normal = posixpath.normpath(source.lstrip("/"))
        if normal == ".." or normal.startswith("../"):
            raise SourceForbiddenError("source path escapes the loader root")
        return normal.lstrip("/")

    async def load(self, source: str) -> Source:
        """Read the file off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._context.executor, self._read, source)

    def read_blocking(self, source: str) -> Source:
        """Read the file on the calling thread (the pipeline's render thread)."""
        return self._read(source)

    async def unchanged(self, source: str, version: str) -> bool:
        """Whether the file still has ``version`` (its size and mtime): one ``stat``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._context.executor, self._unchanged, source, version)

    def _unchanged(self, source: str, version: str) -> bool:
        try:
            info = os.stat(self._existing_path(self.identity(source)))
        except OSError as exc:
            if exc.errno not in _MISSING_ERRNOS:
                raise
            return False  # gone: whatever was cached of it is stale
        return _version(info) == version

    def _read(self, source: str) -> Source:
        # ``source`` was percent-decoded once by the URL parser, before this check, so
        # "%2e%2e" arrives here as ".." and is refused like it.
        decoded = self.identity(source)
        fd = self._open_checked(decoded)
        try:
            if fd is None:
                fd = os.open(self._existing_path(decoded), _OPEN_FLAGS)
            handle = os.fdopen(fd, "rb")
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            if exc.errno not in _MISSING_ERRNOS:
                raise
            raise SourceNotFoundError(f"source not found: {decoded}") from exc
        with handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SourceNotFoundError(f"source not found: {decoded}")
            if info.st_size > self._context.max_source_bytes:
                raise SourceTooLargeError(
                    f"source is {info.st_size} bytes, over the "
                    f"{self._context.max_source_bytes}-byte limit"
                )
            data = handle.read()
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        return Source(
            data=data,
            etag=f'"{info.st_mtime_ns:x}-{info.st_size:x}"',
            last_modified=modified,
            identity=decoded,
            version=_version(info),
        )

    def _open_checked(self, decoded: str) -> int | None:
        """The common case in two system calls: open ``root/decoded`` as written, then ask
        the kernel where the opened file really is (``/proc/self/fd``, symlinks followed),
        and keep it if that is inside the root. ``None`` (nothing open) when the file is
        missing, outside the root or ``/proc`` is absent: the resolving path then decides."""
        try:
            fd = os.open(f"{self._root_text}/{decoded}", _OPEN_FLAGS)
        except OSError:
            return None
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            real = ""
        if real == self._root_text or real.startswith(self._root_prefix):
            return fd
        os.close(fd)
        return None

    def _existing_path(self, decoded: str) -> Path:
        path = resolve_inside(self._root, decoded)
        if not os.path.lexists(path):
            # Thumbor's fallback for files whose names really contain "%xx".
            literal = resolve_inside(self._root, quote(decoded, safe="/"))
            path = literal if os.path.lexists(literal) else path
        return path


def _version(info: os.stat_result) -> str:
    """A file's version: size, modification time and inode (a replacement by rename changes
    the inode even within one tick of the file system's clock)."""
    return f"{info.st_size}-{info.st_mtime_ns}-{info.st_ino}"
