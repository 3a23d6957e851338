"""The workers' event loop: uvloop's when it is installed, asyncio's when asked or absent."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from thumbor_py.worker import event_loop_factory


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBORPY_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None


def test_asyncio_when_uvloop_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THUMBORPY_EVENT_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails as if not installed
    assert event_loop_factory() is None


def test_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed (it is optional)")
    monkeypatch.delenv("THUMBORPY_EVENT_LOOP", raising=False)
    factory = event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
