"""The coherence rules, against a fake loader and clock: purge wins, stale copies are refused,
changed originals are noticed by revalidation, and a broken purge log fails safe."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from thumbor_py.coherence import (
    WATERMARK,
    Coherence,
    CoherenceSettings,
    MemoryPurgeLog,
    PurgeLog,
    PurgeLogError,
    PurgeRecord,
)
from thumbor_py.errors import SourceNotFoundError, StorageUnavailableError, UpstreamError
from thumbor_py.plugins import Source


@dataclass
class FakeLoader:
    """Identity: lower case without a leading "/"; versions from a dict; counts checks."""

    versions: dict[str, str] = field(default_factory=dict)
    failing: BaseException | None = None
    checks: int = 0

    def identity(self, source: str) -> str:
        return source.lower().lstrip("/")

    async def load(self, source: str) -> Source:
        name = self.identity(source)
        return Source(b"", identity=name, version=self.versions.get(name))

    async def unchanged(self, source: str, version: str) -> bool:
        self.checks += 1
        await asyncio.sleep(0)
        if self.failing is not None:
            raise self.failing
        return self.versions.get(self.identity(source)) == version


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class BrokenLog:
    async def read(self, identity: str) -> PurgeRecord:
        raise PurgeLogError("down")

    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        raise OSError("read-only file system")


def make(
    loader: FakeLoader | None = None,
    log: PurgeLog | None = None,
    clock: Clock | None = None,
    **settings: float | None,
) -> Coherence:
    options = {"check_interval": 0.0, "revalidate_after": None, **settings}
    return Coherence(
        log or MemoryPurgeLog(),
        loader or FakeLoader(),
        CoherenceSettings(**options),  # type: ignore[arg-type]
        clock=clock or Clock(),
    )


@pytest.mark.parametrize(
    ("spelling", "identity"),
    [
        pytest.param("/Astronaut.JPG", "astronaut.jpg", id="loader-identity"),
        pytest.param("astronaut.jpg", "astronaut.jpg", id="already-canonical"),
    ],
)
def test_identity_is_the_loaders(spelling: str, identity: str) -> None:
    assert make().identity(spelling) == identity


def test_identity_of_a_loader_without_one_is_the_source() -> None:
    class Plain:
        async def load(self, source: str) -> Source:
            return Source(b"")

    assert Coherence(MemoryPurgeLog(), Plain()).identity("/A.jpg") == "/A.jpg"


async def test_a_copy_loaded_before_a_purge_is_refused_and_one_after_is_used() -> None:
    clock = Clock()
    coherence = make(clock=clock)
    before = clock.now - 1
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=before, version="1")
    await coherence.purge("/A.jpg", None)
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=before, version="1")
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version="1")
    assert await coherence.usable("b.jpg", "b.jpg", loaded_at=before, version="1")


async def test_a_render_loaded_before_a_purge_is_not_stored() -> None:
    clock = Clock()
    coherence = make(clock=clock)
    loaded_at = clock.now
    clock.now += 5  # the purge lands while the render runs
    await coherence.purge("a.jpg", None)
    assert not await coherence.may_store("a.jpg", loaded_at, "1")
    assert await coherence.may_store("a.jpg", clock.now, "1")


async def test_purge_reaches_another_process_through_the_shared_log_within_the_interval() -> None:
    shared, clock = MemoryPurgeLog(), Clock()
    replica_a = make(log=shared, clock=clock, check_interval=0.2)
    replica_b = make(log=shared, clock=clock, check_interval=0.2)
    loaded_at = clock.now - 1
    assert await replica_b.usable("a.jpg", "a.jpg", loaded_at=loaded_at, version="1")  # cached
    started = time.monotonic()
    await replica_a.purge("A.jpg", None)
    waited = time.monotonic() - started
    # The purge returns only once every cached copy of the record has expired.
    assert waited >= 0.2
    assert not await replica_b.usable("a.jpg", "a.jpg", loaded_at=loaded_at, version="1")


async def test_purge_deletes_results_by_identity_and_by_every_form_of_the_spelling() -> None:
    deleted: list[str] = []

    async def delete(name: str) -> int:
        deleted.append(name)
        return 2

    count = await make().purge("%2FA.jpg", delete)
    assert deleted == ["%2fa.jpg", "a.jpg", "%2FA.jpg"]
    assert count == 6


async def test_a_changed_version_at_store_time_invalidates_older_copies() -> None:
    clock, log = Clock(), MemoryPurgeLog()
    coherence = make(log=log, clock=clock)
    first = clock.now
    assert await coherence.may_store("a.jpg", first, "v1")
    assert await log.read("a.jpg") == PurgeRecord(None, "v1")  # recorded, nothing purged
    clock.now += 10
    assert await coherence.may_store("a.jpg", clock.now, "v2")  # the original was replaced
    assert await log.read("a.jpg") == PurgeRecord(clock.now, "v2")
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=first, version="v1")


async def test_revalidation_happens_only_past_revalidate_after() -> None:
    loader, clock = FakeLoader({"a.jpg": "v1"}), Clock()
    coherence = make(loader, clock=clock, revalidate_after=60)
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now - 59, version="v1")
    assert loader.checks == 0
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now - 61, version="v1")
    assert loader.checks == 1
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now - 61, version="v1")
    assert loader.checks == 1  # checked just now: remembered for revalidate_after


@pytest.mark.parametrize(
    ("after", "checks"),
    [pytest.param(0.0, 1, id="zero-always-checks"), pytest.param(None, 0, id="null-never")],
)
async def test_revalidate_after_zero_and_null(after: float | None, checks: int) -> None:
    loader, clock = FakeLoader({"a.jpg": "v1"}), Clock()
    coherence = make(loader, clock=clock, revalidate_after=after)
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version="v1")
    assert loader.checks == checks


async def test_a_changed_original_is_refused_and_recorded_as_a_purge_for_everyone() -> None:
    loader, clock, log = FakeLoader({"a.jpg": "v2"}), Clock(), MemoryPurgeLog()
    coherence = make(loader, log=log, clock=clock, revalidate_after=0)
    other = make(loader, log=log, clock=clock, revalidate_after=None)
    loaded_at = clock.now - 1
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=loaded_at, version="v1")
    assert (await log.read("a.jpg")).purged_at == clock.now
    # A process that never revalidates still drops its copy: the purge is shared.
    assert not await other.usable("a.jpg", "a.jpg", loaded_at=loaded_at, version="v1")


async def test_a_stored_result_is_revalidated_against_the_recorded_version() -> None:
    loader, clock = FakeLoader({"a.jpg": "v1"}), Clock()
    coherence = make(loader, clock=clock, revalidate_after=0)
    stored_at = clock.now
    assert await coherence.may_store("a.jpg", stored_at, "v1")
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=stored_at, version=None)
    loader.versions["a.jpg"] = "v2"
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=stored_at, version=None)


async def test_a_vanished_original_counts_as_changed() -> None:
    loader, clock = FakeLoader(failing=SourceNotFoundError("gone")), Clock()
    coherence = make(loader, clock=clock, revalidate_after=0)
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version="v1")


async def test_failed_revalidation_keeps_the_copy_for_the_grace_period_only() -> None:
    loader, clock = FakeLoader(failing=UpstreamError("origin down")), Clock()
    coherence = make(loader, clock=clock, revalidate_after=10, revalidate_grace=100)
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now - 50, version="v1")
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now - 150, version="v1")
    assert loader.checks == 2


async def test_concurrent_revalidations_of_one_source_share_one_check() -> None:
    loader, clock = FakeLoader({"a.jpg": "v1"}), Clock()
    coherence = make(loader, clock=clock, revalidate_after=0)
    answers = await asyncio.gather(
        *(coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version="v1") for _ in range(5))
    )
    assert answers == [True] * 5
    assert loader.checks == 1


async def test_a_broken_purge_log_fails_safe() -> None:
    coherence = make(log=BrokenLog())
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=time.time(), version="1")
    assert not await coherence.may_store("a.jpg", time.time(), "1")
    # A render loaded during the outage (no cached copy was usable) is not done twice.
    assert await coherence.current("a.jpg", time.time())
    with pytest.raises(StorageUnavailableError):  # 503, as a purge the storage cannot finish
        await coherence.purge("a.jpg", None)


async def test_a_stored_result_is_revalidated_on_its_first_use_in_a_process() -> None:
    # Its stamp is when it was stored, which may be after the original was replaced.
    loader, clock = FakeLoader({"a.jpg": "v1"}), Clock()
    coherence = make(loader, clock=clock, revalidate_after=60)
    assert await coherence.may_store("a.jpg", clock.now, "v1")
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version=None)
    assert await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version=None)
    assert loader.checks == 1


async def test_current_tells_a_render_that_a_purge_landed_during_it() -> None:
    clock = Clock()
    coherence = make(clock=clock)
    loaded_at = clock.now
    assert await coherence.current("a.jpg", loaded_at)
    clock.now += 1
    await coherence.purge("a.jpg", None)
    assert not await coherence.current("a.jpg", loaded_at)
    assert await coherence.current("a.jpg", clock.now)


class ReadOnlyLog(MemoryPurgeLog):
    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        raise OSError("read-only file system")


async def test_a_change_that_cannot_be_recorded_drops_the_copy_without_failing_the_request() -> (
    None
):
    loader, clock, log = FakeLoader({"a.jpg": "v2"}), Clock(), ReadOnlyLog()
    await MemoryPurgeLog.write(log, "a.jpg", version="v1")
    coherence = make(loader, log=log, clock=clock, revalidate_after=0)
    assert not await coherence.usable("a.jpg", "a.jpg", loaded_at=clock.now, version="v1")
    assert not await coherence.may_store("a.jpg", clock.now, "v2")


class CountingLog(MemoryPurgeLog):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def read(self, identity: str) -> PurgeRecord:
        self.reads.append(identity)
        return await super().read(identity)


async def test_records_are_reread_only_when_a_purge_was_recorded_somewhere() -> None:
    log, clock = CountingLog(), Clock()
    writer = make(log=log, clock=clock, check_interval=0.05)
    reader = make(log=log, clock=clock, check_interval=0.05)
    for name in ("a.jpg", "b.jpg"):
        assert await writer.may_store(name, clock.now, "v1")
    log.reads.clear()
    for _ in range(3):
        for name in ("a.jpg", "b.jpg"):
            assert await reader.usable(name, name, loaded_at=clock.now, version="v1")
        await asyncio.sleep(0.06)  # past check_interval: only the watermark is read again
    assert sorted(set(log.reads) - {"a.jpg", "b.jpg"}) == [WATERMARK]
    assert log.reads.count("a.jpg") == log.reads.count("b.jpg") == 1
    clock.now += 1
    await writer.purge("a.jpg", None)
    assert not await reader.usable("a.jpg", "a.jpg", loaded_at=clock.now - 1, version="v1")
    assert log.reads.count("a.jpg") == 2
