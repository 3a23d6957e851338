"""One contract for every purge log (memory, shared folder, MongoDB double, real MongoDB when
``THUMBOR_PY_TEST_MONGODB_URI`` is set), and the choice ``coherence.purge_log: auto`` makes."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MONGODB_URI, REAL_MONGODB
from tests.result_storages.memory_collection import MemoryCollection, MemoryUpdateResult
from thumbor_py.assembly import build_purge_log
from thumbor_py.coherence import MemoryPurgeLog, PurgeLog, PurgeLogError, PurgeRecord
from thumbor_py.config import Config
from thumbor_py.errors import ConfigError
from thumbor_py.purge_logs import FilePurgeLog, MongoPurgeLog


class PurgeCollection(MemoryCollection):
    """The metadata double plus the one update the purge log makes: ``$max`` and ``$set``."""

    async def update_one(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False
    ) -> MemoryUpdateResult:
        self.calls.append("update_one")
        document = self.documents.get(filter["_id"])
        if document is None:
            if not upsert:
                return MemoryUpdateResult(0)
            document = {"_id": filter["_id"]}
        document = copy.deepcopy(document)
        for name, value in update.get("$max", {}).items():
            if document.get(name) is None or value > document[name]:
                document[name] = value
        document.update(update.get("$set", {}))
        self.documents[filter["_id"]] = document
        return MemoryUpdateResult(1)


BACKENDS = [
    "memory",
    "file",
    "mongodb-double",
    REAL_MONGODB,
]


@pytest.fixture(params=BACKENDS)
async def purge_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PurgeLog]:
    if request.param == "memory":
        yield MemoryPurgeLog()
    elif request.param == "file":
        yield FilePurgeLog(tmp_path / "purges")
    elif request.param == "mongodb-double":
        yield MongoPurgeLog(PurgeCollection())
    else:
        log = MongoPurgeLog(uri=MONGODB_URI, database="thumbor_py_test", name=uuid.uuid4().hex)
        await log.start()
        try:
            yield log
        finally:
            await log._documents().drop()  # type: ignore[attr-defined]
            await log.aclose()


async def test_an_unknown_identity_has_an_empty_record(purge_log: PurgeLog) -> None:
    assert await purge_log.read("never.jpg") == PurgeRecord()


async def test_purge_times_only_grow_and_versions_are_replaced(purge_log: PurgeLog) -> None:
    await purge_log.write("a.jpg", version="v1")
    assert await purge_log.read("a.jpg") == PurgeRecord(None, "v1")
    await purge_log.write("a.jpg", purged_at=200.0)
    await purge_log.write("a.jpg", purged_at=100.0)  # a slower replica's older purge
    assert await purge_log.read("a.jpg") == PurgeRecord(200.0, "v1")
    await purge_log.write("a.jpg", purged_at=300.5, version="v2")
    assert await purge_log.read("a.jpg") == PurgeRecord(300.5, "v2")
    assert await purge_log.read("b.jpg") == PurgeRecord()


async def test_identities_are_kept_apart_whatever_their_characters(purge_log: PurgeLog) -> None:
    names = ["a.jpg", "A.jpg", "s3://bucket/a b.jpg", "http://h/ä?x=1", "../x"]
    for index, name in enumerate(names):
        await purge_log.write(name, purged_at=float(index))
    assert [(await purge_log.read(name)).purged_at for name in names] == [0.0, 1.0, 2.0, 3.0, 4.0]


def _purge_many(folder: str, start: int) -> None:
    async def run() -> None:
        log = FilePurgeLog(Path(folder))
        for step in range(start, start + 40):
            await log.write("a.jpg", purged_at=float(step))

    asyncio.run(run())


async def test_the_folder_keeps_the_latest_purge_across_concurrent_processes(
    tmp_path: Path,
) -> None:
    folder = str(tmp_path / "purges")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_purge_many, args=(folder, s)) for s in (0, 500, 1000)]
    for process in processes:
        process.start()
    for process in processes:
        await asyncio.to_thread(process.join, 60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert (await FilePurgeLog(Path(folder)).read("a.jpg")).purged_at == 1039.0
    assert not await asyncio.to_thread(lambda: list(Path(folder).glob("*.tmp")))


async def test_a_broken_record_is_an_error_not_an_empty_record(tmp_path: Path) -> None:
    log = FilePurgeLog(tmp_path)
    await log.write("a.jpg", purged_at=1.0)
    (record,) = await asyncio.to_thread(lambda: list(tmp_path.glob("*.record")))
    await asyncio.to_thread(record.write_text, "{not json")
    with pytest.raises(PurgeLogError):
        await log.read("a.jpg")


async def test_mongodb_errors_are_translated() -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    class Down(PurgeCollection):
        async def find_one(self, filter: Mapping[str, Any]) -> dict[str, Any] | None:
            raise ServerSelectionTimeoutError("no servers")

    with pytest.raises(PurgeLogError):
        await MongoPurgeLog(Down()).read("a.jpg")


def config(**sections: object) -> Config:
    return Config.from_mapping({"security": {"allow_unsafe": True}, **sections}, env={})


@pytest.mark.parametrize(
    ("sections", "kind", "where"),
    [
        pytest.param({}, MemoryPurgeLog, None, id="no-storage-local"),
        pytest.param(
            {"result_storage": {"use": "file", "settings": {"root": "/r"}}},
            FilePurgeLog,
            "/r/.coherence",
            id="file-storage-folder-inside-its-root",
        ),
        pytest.param(
            {"coherence": {"purge_log": "file", "path": "/shared"}},
            FilePurgeLog,
            "/shared",
            id="explicit-folder",
        ),
        pytest.param(
            {
                "result_storage": {
                    "use": "s3",
                    "settings": {
                        "bucket": "b",
                        "metadata": {"uri": "mongodb://m", "database": "d"},
                    },
                }
            },
            MongoPurgeLog,
            "mongodb://m d purges",
            id="s3-storage-beside-its-metadata",
        ),
    ],
)
def test_auto_picks_the_store_the_result_storage_uses(
    sections: dict[str, object], kind: type, where: str | None
) -> None:
    log = build_purge_log(config(**sections))
    assert type(log) is kind
    if isinstance(log, FilePurgeLog):
        assert str(log._folder) == where
    if isinstance(log, MongoPurgeLog):
        assert f"{log._uri} {log._database} {log._name}" == where


@pytest.mark.parametrize(
    "sections",
    [
        pytest.param({"coherence": {"purge_log": "file"}}, id="folder-without-path"),
        pytest.param({"coherence": {"purge_log": "mongodb"}}, id="mongodb-without-uri"),
    ],
)
def test_a_shared_log_without_a_location_is_a_config_error(
    sections: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("THUMBOR_PY_MONGODB_URI", raising=False)
    with pytest.raises(ConfigError, match="coherence"):
        build_purge_log(config(**sections))
