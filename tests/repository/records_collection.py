"""The in-memory collection double, grown by what the image records ask: ``insert_one``
(duplicate ``_id`` refused as MongoDB does), ``$gt`` on a field, array membership (a tag
matches a document whose ``tags`` holds it), and ``find`` with ``sort`` and ``limit``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from tests.result_storages.memory_collection import MemoryCollection, MemoryCursor


class RecordsCollection(MemoryCollection):
    """``MemoryCollection`` plus the records' queries."""

    def _matches(self, document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
        return all(_match(document.get(name), value) for name, value in query.items())

    async def insert_one(self, document: Mapping[str, Any]) -> None:
        self.calls.append("insert_one")
        if document["_id"] in self.documents:
            raise DuplicateKeyError("E11000 duplicate key")
        self.documents[document["_id"]] = copy.deepcopy(dict(document))

    def find(  # type: ignore[override]
        self,
        filter: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
        *,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> MemoryCursor:
        self.calls.append("find")
        found = [copy.deepcopy(d) for d in self.documents.values() if self._matches(d, filter)]
        for name, direction in reversed(sort or []):
            found.sort(key=lambda d: d[name], reverse=direction < 0)
        return MemoryCursor(found[:limit] if limit else found)


def _match(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping) and "$gt" in expected:
        return actual is not None and actual > expected["$gt"]
    if isinstance(actual, list) and not isinstance(expected, list):
        return expected in actual
    return bool(actual == expected)
