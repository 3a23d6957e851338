"""Fixtures for loader tests: the local origins and a factory of started HTTP loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.loaders.http_origin import ALT_HOST, LoaderFactory, raw_client, serving_origin


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    """Base URL of the origin on 127.0.0.1."""
    async with serving_origin() as base:
        yield base


@pytest.fixture
async def alt_origin() -> AsyncIterator[str]:
    """Base URL of the same origin on 127.0.0.2 (opened with ``allowed_networks``)."""
    async with serving_origin(ALT_HOST) as base:
        yield base


@pytest.fixture
async def raw_origin() -> AsyncIterator[str]:
    """An origin written on raw sockets: ``/broken`` and a close-delimited ``/huge``."""
    server = await asyncio.start_server(raw_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.fixture
async def make_loader() -> AsyncIterator[LoaderFactory]:
    """``await make_loader(total_timeout=1, ...)`` → a started ``HttpLoader``."""
    factory = LoaderFactory([])
    yield factory
    for loader in factory.made:
        await loader.aclose()
