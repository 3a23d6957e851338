"""The result-storage guard: backend failures degrade and pause, bugs are logged with their
traceback and counted, callers never reach through it, readiness survives an outage."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from prometheus_client import REGISTRY
from pymongo.errors import ServerSelectionTimeoutError

from tests.result_storages.test_mongodb import variant
from thumbor_py.errors import StorageKeyError, StorageUnavailableError
from thumbor_py.plugins import StoredResult
from thumbor_py.results import GuardedResultStorage, Readiness, readiness

TOPOLOGY = "Topology Description: <TopologyDescription id: 1, servers: [" + "x" * 500 + "]>"


class FakeStorage:
    """A result storage that raises ``error`` from every call until it is cleared."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.delay = 0.0
        self.calls: list[str] = []
        self.url: str | None = None
        self.started = self.closed = False

    async def _answer(self, name: str) -> None:
        self.calls.append(name)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def get(self, key: str) -> StoredResult | None:
        await self._answer("get")
        return replace(variant(), url=self.url) if key == "hit" else None

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        await self._answer("read")
        return b"body"

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        await self._answer("put")

    async def delete(self, key: str) -> None:
        await self._answer("delete")

    async def purge(self, source: str) -> int:
        await self._answer("purge")
        return 3

    async def start(self) -> None:
        self.started = True

    async def aclose(self) -> None:
        self.closed = True


def guarded(fake: FakeStorage, pause: float = 60.0) -> GuardedResultStorage:
    return GuardedResultStorage(fake, timeout=0.2, pause=pause)


def bugs(call: str) -> float:
    value = REGISTRY.get_sample_value("thumbor_py_storage_bugs_total", {"call": call})
    return value or 0.0


def client_error() -> ClientError:
    response: Any = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(StorageUnavailableError("MongoDB db:27017: AutoReconnect"), id="storage"),
        pytest.param(ConnectionRefusedError(111, "refused"), id="connection"),
        pytest.param(PermissionError(13, "Permission denied"), id="os"),
        pytest.param(client_error(), id="botocore-client"),
        pytest.param(EndpointConnectionError(endpoint_url="http://s3"), id="botocore-endpoint"),
        pytest.param(ServerSelectionTimeoutError(TOPOLOGY), id="pymongo"),
    ],
)
async def test_backend_failures_degrade_and_pause(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeStorage()
    fake.error = error
    guard = guarded(fake)
    with caplog.at_level(logging.WARNING, logger="thumbor_py.results"):
        assert await guard.get("hit") is None
        assert await guard.put("k", variant(), b"x") is False
    assert fake.calls == ["get"]  # paused: the write was not even tried
    assert (guard.counters.error, guard.counters.skipped, guard.counters.bug) == (1, 1, 0)
    assert not guard.available
    assert guard.degraded
    (record,) = caplog.records
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) < 250
    assert "pausing it for 60s" in record.getMessage()


async def test_a_timeout_degrades_and_pauses() -> None:
    fake = FakeStorage()
    fake.delay = 5
    guard = guarded(fake)
    assert await guard.get("hit") is None
    assert guard.counters.error == 1
    assert not guard.available


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(TypeError("get() takes 2 positional arguments"), id="TypeError"),
        pytest.param(KeyError("etag"), id="KeyError"),
        pytest.param(AttributeError("'NoneType' has no attribute 'x'"), id="AttributeError"),
    ],
)
async def test_bugs_are_logged_with_a_traceback_counted_and_do_not_pause(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeStorage()
    fake.error = error
    guard = guarded(fake)
    before = bugs("get")
    with caplog.at_level(logging.WARNING, logger="thumbor_py.results"):
        assert await guard.get("hit") is None
    assert bugs("get") == before + 1
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[1] is error
    assert guard.available
    assert not guard.degraded
    fake.error = None
    assert await guard.get("hit") is not None  # not paused
    assert (guard.counters.bug, guard.counters.error, guard.counters.hit) == (1, 0, 1)


async def test_a_refused_key_is_not_an_outage() -> None:
    fake = FakeStorage()
    fake.error = StorageKeyError("object key holds a control character")
    guard = guarded(fake)
    assert await guard.put("k", variant(), b"x") is False
    assert guard.counters.refused == 1
    assert guard.available


async def test_a_redirect_url_with_control_characters_is_a_miss() -> None:
    fake = FakeStorage()
    fake.url = "https://cdn/a\r\nSet-Cookie: x"
    guard = guarded(fake)
    assert await guard.get("hit") is None
    assert guard.counters.refused == 1
    fake.url = "https://cdn/a%0D.jpg"
    hit = await guard.get("hit")
    assert hit is not None
    assert hit.url == "https://cdn/a%0D.jpg"


async def test_the_storage_answers_again_after_the_pause() -> None:
    fake = FakeStorage()
    fake.error = OSError(5, "Input/output error")
    guard = guarded(fake, pause=0.05)
    assert await guard.get("hit") is None
    await asyncio.sleep(0.06)
    fake.error = None
    assert await guard.get("hit") is not None
    assert not guard.degraded


async def test_purge_goes_through_the_guard_even_while_paused() -> None:
    fake = FakeStorage()
    guard = guarded(fake)
    fake.error = OSError(5, "Input/output error")
    await guard.get("hit")
    fake.error = None
    assert not guard.available
    assert await guard.purge("photos/cat.jpg") == 3
    assert not guard.degraded


async def test_a_failed_purge_is_a_503_naming_no_host() -> None:
    fake = FakeStorage()
    fake.error = StorageUnavailableError("MongoDB mongo.internal:27017: AutoReconnect")
    guard = guarded(fake)
    with pytest.raises(StorageUnavailableError) as caught:
        await guard.purge("photos/cat.jpg")
    assert caught.value.status == 503
    assert "mongo.internal" not in caught.value.reason
    assert "try again" in caught.value.reason


async def test_a_bug_in_purge_is_raised_as_is() -> None:
    fake = FakeStorage()
    fake.error = TypeError("bad")
    with pytest.raises(TypeError):
        await guarded(fake).purge("photos/cat.jpg")


async def test_the_guard_starts_and_closes_its_storage() -> None:
    fake = FakeStorage()
    guard = guarded(fake)
    await guard.start()
    await guard.aclose()
    assert fake.started
    assert fake.closed
    assert not hasattr(guard, "storage")  # no reaching through


async def test_readiness_survives_an_outage_without_probing() -> None:
    fake = FakeStorage()
    guard = guarded(fake)
    assert await readiness(guard, required=False) == Readiness(ready=True, degraded=False)
    assert fake.calls == []  # answered at once: a slow storage cannot time the probe out
    fake.error = ConnectionRefusedError(111, "refused")
    await guard.get("hit")  # a request meets the outage
    assert await readiness(guard, required=False) == Readiness(ready=True, degraded=True)
    assert fake.calls == ["get"]


async def test_readiness_can_require_the_storage() -> None:
    fake = FakeStorage()
    guard = guarded(fake)
    assert await readiness(guard, required=True) == Readiness(ready=True, degraded=False)
    fake.error = ConnectionRefusedError(111, "refused")
    assert await readiness(guard, required=True) == Readiness(ready=False, degraded=True)
    calls = len(fake.calls)
    assert await readiness(guard, required=True) == Readiness(ready=False, degraded=True)
    assert len(fake.calls) == calls  # paused: no new probe
    fake.error = None
    assert await readiness(None, required=True) == Readiness(ready=True, degraded=False)


async def test_readiness_probes_are_not_counted_as_lookups() -> None:
    fake = FakeStorage()
    guard = guarded(fake)
    await guard.check()
    assert (guard.counters.hit, guard.counters.miss) == (0, 0)
