"""Decoded masters shared by the workers of one server: one decode per source, not per worker.

A page's srcset asks for one original at several widths; with connections balanced over the
workers, those widths land on different workers, and each would decode the source again
(a 12 MP JPEG is about 130 ms of CPU, the resizes and encodes of all five widths about as
much). Within a worker the pipeline's source single flight and master cache already share
one decode; this module extends that across workers:

- A worker that needs a master it does not hold asks the shared folder (a ``tmpfs`` such as
  ``/dev/shm``): an entry ``KEY.master`` is a finished master, mapped and copied into the
  worker's own master cache (a few ms for 12 MP, against 130 ms for a decode).
- Otherwise its render thread, right before decoding (not while the job waits in the
  queue, so a claim is only held by a decode that runs), *claims* the source: an
  exclusive, non-blocking ``flock`` on ``KEY.lock``. The claimant decodes, writes the entry
  (a temporary file renamed into place) and only then releases the lock. A worker that
  finds the lock held waits for the entry, polling from an I/O thread, with its render
  threads free for other requests; the kernel releases the lock of a claimant that dies,
  and a claimant that fails releases it too, so a waiter then claims and decodes itself.
  Nothing ever blocks on another process.
- Entries are bounded: a master is shared only if its source has at least ``min_pixels``
  (smaller ones decode faster than they are written and read), only in the plain modes
  (L, LA, RGB, RGBA), and the folder holds at most ``max_bytes`` (oldest entries removed
  first; entries older than ``ttl`` are ignored and removed). A reader holds no mapping
  after the copy, so removal never disturbs it.

The entry's header is a pickle, written and read only by this server's own workers in a
folder only its user can write (0700). Cache coherence is not this module's business: an
entry carries when its source was loaded and its version, and the pipeline asks
``Coherence.usable`` before using it, as for its own cache (a stale entry is removed).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import pickle
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from thumbor_py.imaging import formats
from thumbor_py.imaging.master import Master, PixelSource

# The environment variable through which the server hands its workers the folder.
FOLDER_ENV = "THUMBORPY_SHARED_MASTERS"  # not THUMBOR_PY_*: those are settings
# Sources under this many pixels decode faster than their master is written and read.
SHARED_MIN_PIXELS = 1_000_000
# A temporary file older than this was left by a writer that died.
_STALE_WRITE = 60.0
_MAGIC = b"TPYMST1\n"
_LENGTH = struct.Struct("<Q")
_MODES = frozenset({"L", "LA", "RGB", "RGBA"})


@dataclass(frozen=True, slots=True)
class _Header:
    """What a reader needs besides the pixels and the source bytes."""

    identity: str
    loaded_at: float
    version: str | None
    format: str
    size: tuple[int, int]
    oriented_size: tuple[int, int]
    mode: str
    scale: int
    image_mode: str
    image_size: tuple[int, int]
    info: dict[str, object]
    data_length: int


class Claim:
    """The exclusive right to decode one source and publish its master (a held flock)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self._path = path
        self._lock = threading.Lock()

    def release(self) -> None:
        """Let the siblings go on; idempotent, from any thread (the render thread right
        after publishing, the event loop on failure). The lock file is removed first, so
        lock files never pile up: a sibling that opened it just before may then lock the
        removed file while another creates a new one, and both decode, which costs a decode
        and nothing else (an entry is written whole, by rename)."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(fd)


class SharedMasters:
    """The shared folder of masters (see the module docstring). Every method blocks (file
    I/O): call them from a thread, never the event loop."""

    def __init__(
        self, folder: Path, *, namespace: str, max_bytes: int, min_pixels: int, ttl: float
    ) -> None:
        self._folder = folder
        self._namespace = namespace
        self._max_bytes = max_bytes
        self._min_pixels = min_pixels
        self._ttl = ttl

    def _path(self, identity: str, suffix: str) -> Path:
        key = hashlib.sha256(f"{self._namespace}\0{identity}".encode()).hexdigest()[:40]
        return self._folder / f"{key}{suffix}"

    def peek(self, identity: str) -> tuple[PixelSource | None, bool]:
        """The shared master of ``identity`` if there is one, and whether nobody holds its
        claim (False: a sibling is decoding it now)."""
        found = self.get(identity)
        if found is not None:
            return found, True
        claim = self.claim(identity)
        if claim is None:
            return None, False
        claim.release()
        return None, True

    def claim(self, identity: str) -> Claim | None:
        """The claim to decode ``identity``; None while a sibling holds it, or once its
        master is published (look again)."""
        lock = self._path(identity, ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        claim = Claim(fd, lock)
        if self._path(identity, ".master").exists():  # published since the caller looked
            claim.release()
            return None
        return claim

    def get(self, identity: str) -> PixelSource | None:
        """The shared master of ``identity`` copied into this process, or None."""
        path = self._path(identity, ".master")
        try:
            with path.open("rb") as handle:
                if time.time() - os.fstat(handle.fileno()).st_mtime > self._ttl:
                    path.unlink(missing_ok=True)
                    return None
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    return _read(mapped, identity)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            path.unlink(missing_ok=True)  # torn or foreign: decode again
            return None

    def discard(self, identity: str) -> None:
        """Remove the shared master of ``identity`` (coherence found it stale)."""
        self._path(identity, ".master").unlink(missing_ok=True)

    def publish(self, source: PixelSource) -> bool:
        """Write ``source``'s master for the siblings, if it is worth sharing and fits."""
        master = source.master
        if master is None or not self._worth_sharing(master):
            return False
        image = master.image
        header = _Header(
            identity=source.identity,
            loaded_at=source.loaded_at,
            version=source.version,
            format=master.header.format,
            size=master.header.size,
            oriented_size=master.header.oriented_size,
            mode=master.header.mode,
            scale=master.scale,
            image_mode=image.mode,
            image_size=image.size,
            info=_plain_info(image.info),
            data_length=len(source.data),
        )
        pixels = image.tobytes()
        head = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
        size = len(_MAGIC) + _LENGTH.size + len(head) + len(source.data) + len(pixels)
        if size > self._max_bytes:
            return False
        self._make_room(size)
        final = self._path(source.identity, ".master")
        temporary = final.with_suffix(f".{os.getpid()}.tmp")
        with temporary.open("wb") as handle:
            handle.write(_MAGIC + _LENGTH.pack(len(head)) + head)
            handle.write(source.data)
            handle.write(pixels)
        temporary.replace(final)
        return True

    def _worth_sharing(self, master: Master) -> bool:
        width, height = master.header.oriented_size
        return width * height >= self._min_pixels and master.image.mode in _MODES

    def _make_room(self, size: int) -> None:
        """Remove expired entries, then the oldest, until ``size`` more bytes fit (and the
        temporary files of writers that died)."""
        entries = []
        now = time.time()
        for path in self._folder.glob("*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > _STALE_WRITE:
                    path.unlink(missing_ok=True)
        for path in self._folder.glob("*.master"):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                if now - info.st_mtime > self._ttl:
                    path.unlink(missing_ok=True)
                else:
                    entries.append((info.st_mtime, info.st_size, path))
        total = sum(entry[1] for entry in entries)
        for _, length, path in sorted(entries):
            if total + size <= self._max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= length


def _plain_info(info: Mapping[Any, Any]) -> dict[str, object]:
    """The image's info entries a pickle can carry (ICC profile, EXIF, DPI, ...)."""
    plain: dict[str, object] = {}
    for key, value in info.items():
        if isinstance(key, str) and isinstance(value, bytes | str | int | float | tuple):
            plain[key] = value
    return plain


def _read(mapped: mmap.mmap, identity: str) -> PixelSource | None:
    if mapped[: len(_MAGIC)] != _MAGIC:
        raise ValueError("not a shared master")
    start = len(_MAGIC) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(mapped, len(_MAGIC))
    header: _Header = pickle.loads(mapped[start : start + length])
    if header.identity != identity:  # a hash collision: treat as absent
        return None
    offset = start + length
    data = mapped[offset : offset + header.data_length]
    with memoryview(mapped) as view:
        pixels = view[offset + header.data_length :]
        image = Image.frombytes(header.image_mode, header.image_size, pixels)
        pixels.release()
    image.info.update(header.info)
    opened = formats.Opened(
        image=image,
        format=header.format,
        size=header.size,
        oriented_size=header.oriented_size,
        orientation=1,
        frames=1,
        mode=header.mode,
        data=data,
    )
    nbytes = image.width * image.height * (1 if image.mode == "L" else 4)
    master = Master(image, opened, header.scale, nbytes, time.monotonic())
    return PixelSource(
        identity, data, master=master, loaded_at=header.loaded_at, version=header.version
    )
