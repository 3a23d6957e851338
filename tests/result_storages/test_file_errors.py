"""The file result storage deletes nothing on a read error; only a really corrupt result."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from result_storages.file import FileResultStorage
from tests.result_storages.test_mongodb import variant
from thumbor_py.errors import StorageUnavailableError
from thumbor_py.plugins import PluginContext
from thumbor_py.results import GuardedResultStorage

BODY = b"\xff\xd8stored"
KEY = "ab" * 32


def storage(root: Path) -> FileResultStorage:
    return FileResultStorage(FileResultStorage.Settings(root=str(root)), PluginContext(1))


def files(root: Path) -> set[str]:
    """Bodies and metadata (not the per-source purge markers)."""
    return {p.name for p in root.rglob("*") if p.is_file() and "sources" not in p.parts}


def meta_file(root: Path) -> Path:
    return next(root.rglob(f"{KEY}.json"))


def body_file(root: Path) -> Path:
    return next(p for p in root.rglob(KEY) if "sources" not in p.parts)


def failing_reads(root: Path, suffix: str, error: OSError) -> Callable[[Path], bytes]:
    """``Path.read_bytes`` that fails for stored files ending with ``suffix``."""
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.is_relative_to(root) and self.name.endswith(suffix):
            raise error
        return original(self)

    return read_bytes


READ_ERRORS = [
    pytest.param(PermissionError(errno.EACCES, "Permission denied"), id="EACCES"),
    pytest.param(OSError(errno.EMFILE, "Too many open files"), id="EMFILE"),
    pytest.param(OSError(errno.EIO, "Input/output error"), id="EIO"),
]


@pytest.mark.parametrize("error", READ_ERRORS)
async def test_a_metadata_read_error_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    store = storage(tmp_path)
    await store.put(KEY, variant(), BODY)
    before = files(tmp_path)
    monkeypatch.setattr(Path, "read_bytes", failing_reads(tmp_path, ".json", error))
    with pytest.raises(StorageUnavailableError, match=error.strerror or ""):
        await store.get(KEY)
    assert files(tmp_path) == before
    monkeypatch.undo()
    assert await store.get(KEY) is not None


@pytest.mark.parametrize("error", READ_ERRORS)
async def test_a_body_read_error_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    store = storage(tmp_path)
    await store.put(KEY, variant(), BODY)
    hit = await store.get(KEY)
    assert hit is not None
    before = files(tmp_path)
    monkeypatch.setattr(Path, "read_bytes", failing_reads(tmp_path, KEY, error))
    with pytest.raises(StorageUnavailableError):
        await store.read(KEY, hit)
    assert files(tmp_path) == before
    monkeypatch.undo()
    assert await store.read(KEY, hit) == BODY


@pytest.mark.parametrize("error", READ_ERRORS)
async def test_behind_the_guard_a_read_error_is_a_miss_and_keeps_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    guard = GuardedResultStorage(storage(tmp_path), timeout=2, pause=0)
    assert await guard.put(KEY, variant(), BODY)
    monkeypatch.setattr(Path, "read_bytes", failing_reads(tmp_path, ".json", error))
    assert await guard.get(KEY) is None
    assert guard.counters.error == 1
    monkeypatch.undo()
    assert await guard.get(KEY) is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
async def test_a_real_permission_error_deletes_nothing(tmp_path: Path) -> None:
    store = storage(tmp_path)
    await store.put(KEY, variant(), BODY)
    meta = meta_file(tmp_path)
    meta.chmod(0)
    try:
        with pytest.raises(StorageUnavailableError):
            await store.get(KEY)
        assert meta.exists()
    finally:
        meta.chmod(0o644)


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(json.dumps({"path": "x"}).encode(), id="missing-fields"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
    ],
)
async def test_corrupt_metadata_is_dropped(tmp_path: Path, metadata: bytes) -> None:
    store = storage(tmp_path)
    await store.put(KEY, variant(), BODY)
    meta_file(tmp_path).write_bytes(metadata)
    assert await store.get(KEY) is None
    assert not {KEY, f"{KEY}.json"} & files(tmp_path)


@pytest.mark.parametrize("body", [BODY[:-1], BODY + b"more", b""])
async def test_a_body_of_the_wrong_length_is_dropped(tmp_path: Path, body: bytes) -> None:
    store = storage(tmp_path)
    await store.put(KEY, variant(), BODY)
    hit = await store.get(KEY)
    assert hit is not None
    assert hit.size == len(BODY)
    body_file(tmp_path).write_bytes(body)
    assert await store.read(KEY, hit) is None
    assert not {KEY, f"{KEY}.json"} & files(tmp_path)
