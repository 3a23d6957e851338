"""write_atomically: readers see the old file or the new one, and a failed write leaves no
temporary file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thumbor_py.files import write_atomically


def test_a_write_replaces_the_file_and_creates_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "result.bin"
    write_atomically(target, b"old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.bin"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "result.bin"
    write_atomically(target, b"old")

    def refuse(_src: str, _dst: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.bin"]
