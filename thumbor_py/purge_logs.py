"""Purge logs every replica shares: a folder (atomic file writes) or a MongoDB collection.

The assembly picks one from ``coherence`` (:func:`thumbor_py.assembly.build_purge_log`).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from thumbor_py.coherence import PurgeLogError, PurgeRecord, merge
from thumbor_py.files import write_atomically

T = TypeVar("T")


class FilePurgeLog:
    """A folder every replica mounts: one JSON file per identity (``<sha256>.record``),
    replaced whole by rename, so readers never see half a record."""

    def __init__(self, folder: Path, executor: Executor | None = None) -> None:
        self._folder = folder
        self._executor = executor

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def _path(self, identity: str) -> Path:
        name = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        return self._folder / f"{name}.record"

    async def read(self, identity: str) -> PurgeRecord:
        """The record of ``identity`` (empty when none was written)."""
        return await self._run(self._read, identity)

    def _read(self, identity: str) -> PurgeRecord:
        try:
            document = json.loads(self._path(identity).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return PurgeRecord()
        except ValueError as exc:  # files are replaced whole: this is a broken disk
            raise PurgeLogError(f"unreadable purge record for {identity!r}") from exc
        return PurgeRecord(document.get("purged_at"), document.get("version"))

    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        """Merge into the record, under a lock that serialises writers on every host."""
        await self._run(self._write, identity, purged_at, version)

    def _write(self, identity: str, purged_at: float | None, version: str | None) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        with open(self._folder / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            record = merge(self._read(identity), purged_at, version)
            document = {"identity": identity, "purged_at": record.purged_at}
            document["version"] = record.version
            write_atomically(self._path(identity), json.dumps(document).encode())


class PurgeCollection(Protocol):
    """The part of PyMongo's ``AsyncCollection`` the MongoDB purge log uses."""

    async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching document."""
        ...

    async def update_one(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False
    ) -> object:
        """Apply ``$max``/``$set`` to one document (or insert it)."""
        ...


class MongoPurgeLog:
    """One document per identity: ``{_id: identity, purged_at: epoch seconds, version}``.

    ``$max`` keeps the later purge time when two replicas purge at once.
    """

    def __init__(
        self,
        collection: PurgeCollection | None = None,
        *,
        uri: str | None = None,
        database: str = "thumbor_py",
        name: str = "purges",
        timeout_ms: int = 1000,
    ) -> None:
        self._collection = collection
        self._uri, self._database, self._name = uri, database, name
        self._timeout_ms = timeout_ms
        self._client: Any = None
        self._opening: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (lazily: the driver connects on the first call)."""
        if self._collection is not None or self._uri is None:
            return
        from pymongo import AsyncMongoClient

        # The constructor probes the platform (files): off the loop.
        self._client = await asyncio.to_thread(
            functools.partial(
                AsyncMongoClient,
                self._uri,
                serverSelectionTimeoutMS=self._timeout_ms,
                connectTimeoutMS=self._timeout_ms,
                socketTimeoutMS=self._timeout_ms * 5,
            )
        )
        self._collection = self._client[self._database][self._name]
        # Opening the topology probes the platform once (pymongo stats /.dockerenv); start it
        # now, in its own task, rather than inside the first request's lookup.
        self._opening = asyncio.get_running_loop().create_task(self._client.aconnect())

    async def aclose(self) -> None:
        """Close the client this log opened."""
        if self._opening is not None:
            self._opening.cancel()
            await asyncio.gather(self._opening, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client, self._collection = None, None

    def _documents(self) -> PurgeCollection:
        if self._collection is None:
            raise RuntimeError("MongoPurgeLog.start() was not awaited")
        return self._collection

    async def read(self, identity: str) -> PurgeRecord:
        """The record of ``identity`` (empty when none was written)."""
        from pymongo.errors import PyMongoError

        try:
            document = await self._documents().find_one({"_id": identity})
        except PyMongoError as exc:
            raise PurgeLogError(f"MongoDB: {type(exc).__name__}") from exc
        if document is None:
            return PurgeRecord()
        return PurgeRecord(document.get("purged_at"), document.get("version"))

    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        """Merge into the record in one atomic update."""
        from pymongo.errors import PyMongoError

        update: dict[str, Any] = {}
        if purged_at is not None:
            update["$max"] = {"purged_at": purged_at}
        if version is not None:
            update["$set"] = {"version": version}
        if not update:
            return
        try:
            await self._documents().update_one({"_id": identity}, update, upsert=True)
        except PyMongoError as exc:
            raise PurgeLogError(f"MongoDB: {type(exc).__name__}") from exc
