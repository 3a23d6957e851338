"""Metadata collections for the contract tests: the in-memory double, and MongoDB if given."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import MONGODB_URI, REAL_MONGODB
from tests.result_storages.memory_collection import MemoryCollection

BACKENDS = [
    "memory",
    REAL_MONGODB,
]


@pytest.fixture(params=BACKENDS)
async def collection(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """An empty async collection: the double, or a fresh collection on a real server."""
    if request.param == "memory":
        yield MemoryCollection()
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    collection = client["thumbor_py_test"][f"results_{uuid.uuid4().hex}"]
    try:
        yield collection
    finally:
        await collection.drop()
        await client.close()
