"""Metadata collections for the contract tests: the in-memory double, and MongoDB if given."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.result_storages.memory_collection import MemoryCollection

MONGODB_URI = os.environ.get("THUMBOR_PY_TEST_MONGODB_URI")
BACKENDS = [
    "memory",
    pytest.param(
        "mongodb",
        marks=pytest.mark.skipif(
            not MONGODB_URI, reason="set THUMBOR_PY_TEST_MONGODB_URI to run against MongoDB"
        ),
    ),
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
