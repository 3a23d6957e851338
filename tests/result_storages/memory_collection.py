"""An in-memory double of the part of PyMongo's ``AsyncCollection`` the metadata store uses.

Filters are equality matches on top-level fields, which is all the store asks for. The same
contract tests run against a real MongoDB when ``THUMBOR_PY_TEST_MONGODB_URI`` is set.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MemoryUpdateResult:
    """What ``update_one`` answers (the field the store reads)."""

    matched_count: int


class MemoryCursor:
    """A cursor over a snapshot of matching documents."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self._documents = documents

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        """Every document (or the first ``length``)."""
        return self._documents[:length] if length else list(self._documents)


class MemoryCollection:
    """Documents by ``_id``; indexes are recorded, not enforced (TTL is checked on read)."""

    def __init__(self) -> None:
        self.documents: dict[Any, dict[str, Any]] = {}
        self.indexes: list[tuple[Any, dict[str, Any]]] = []
        self.calls: list[str] = []

    def _matches(self, document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
        return all(document.get(name) == value for name, value in query.items())

    async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        self.calls.append("find_one")
        for document in self.documents.values():
            if self._matches(document, filter):
                return copy.deepcopy(document)
        return None

    async def replace_one(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        upsert: bool = False,
    ) -> None:
        self.calls.append("replace_one")
        for key, document in self.documents.items():
            if self._matches(document, filter):
                self.documents[key] = copy.deepcopy(dict(replacement))
                return
        if upsert:
            document = copy.deepcopy(dict(replacement))
            document.setdefault("_id", filter.get("_id"))
            self.documents[document["_id"]] = document

    async def update_one(
        self, filter: Mapping[str, Any], update: Mapping[str, Any]
    ) -> MemoryUpdateResult:
        self.calls.append("update_one")
        for document in self.documents.values():
            if self._matches(document, filter):
                document.update(copy.deepcopy(dict(update["$set"])))
                return MemoryUpdateResult(1)
        return MemoryUpdateResult(0)

    async def delete_one(self, filter: Mapping[str, Any]) -> None:
        self.calls.append("delete_one")
        for key, document in list(self.documents.items()):
            if self._matches(document, filter):
                del self.documents[key]
                return

    def find(
        self,
        filter: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> MemoryCursor:
        self.calls.append("find")
        found = [copy.deepcopy(d) for d in self.documents.values() if self._matches(d, filter)]
        if projection:
            keep = {name for name, on in projection.items() if on} | {"_id"}
            found = [{k: v for k, v in d.items() if k in keep} for d in found]
        return MemoryCursor(found)

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        self.indexes.append((keys, kwargs))
        return str(keys)
