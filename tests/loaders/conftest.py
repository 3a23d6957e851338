"""Fixtures for loader tests: the local origins and a factory of started HTTP loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from tests.loaders.http_origin import ALT_HOST, LoaderFactory, origin_app, raw_client


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    """Base URL of the origin on 127.0.0.1."""
    server = TestServer(origin_app(), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
async def alt_origin() -> AsyncIterator[str]:
    """Base URL of the same origin on 127.0.0.2 (opened with ``allowed_networks``)."""
    server = TestServer(origin_app(), host=ALT_HOST)
    await server.start_server()
    yield f"http://{ALT_HOST}:{server.port}"
    await server.close()


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
