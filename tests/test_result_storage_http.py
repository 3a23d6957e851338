"""Result storage through HTTP: hits skip load and render, 304s read no object, single
flight, outages degrade to plain rendering, purge."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from yarl import URL

from tests.conftest import SAMPLES, free_port
from tests.fakes import CountingLoader, MotoMemoryResultStorage
from thumbor_py.app import PIPELINE_KEY, STORAGE_KEY, create_app
from thumbor_py.config import Config
from thumbor_py.plugins import PluginContext, Source, StoredResult
from thumbor_py.signing import signed_path

KEY = "storage-test-key"


def config(storage: dict[str, Any], **sections: Any) -> Config:
    data: dict[str, Any] = {
        "security": {"key": KEY, "allow_unsafe": True},
        "loader": {"use": "tests.fakes:CountingLoader", "settings": sections.pop("loader", {})},
        "result_storage": storage,
        # Loader calls count renders here, so no master cache serves a source twice.
        "imaging": {"master_cache_bytes": 0},
    }
    data.update(sections)
    return Config.from_mapping(data, env={})


def file_storage(root: Path, **extra: Any) -> dict[str, Any]:
    return {"use": "file", "settings": {"root": str(root)}, **extra}


def moto_memory_storage(endpoint: str, **settings: str) -> dict[str, Any]:
    """A fresh bucket on the moto server, and the result storage section that uses it."""
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return {
        "use": "tests.fakes:MotoMemoryResultStorage",
        "settings": {"endpoint_url": endpoint, "bucket": bucket, **settings},
    }


def last_loader() -> CountingLoader:
    return CountingLoader.instances[-1]


def stored_files(root: Path) -> list[Path]:
    """The result bodies the file storage wrote (named by the 64-hex-digit key)."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and len(path.name) == 64 and path.relative_to(root).parts[0] != "sources"
    ]


async def settle(client: TestClient[Request, Application]) -> None:
    """Wait for background result-storage writes."""
    await client.app[PIPELINE_KEY].drain(5)


async def test_second_request_is_served_from_storage(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(config(file_storage(tmp_path))))
    path = signed_path(KEY, "300x200/smart/chelsea.jpg")
    first = await client.get(path)
    body = await first.read()
    await settle(client)
    second = await client.get(path)
    assert second.status == 200
    assert await second.read() == body
    assert second.headers["X-Result-Storage"] == "hit"
    assert "X-Result-Storage" not in first.headers
    for header in ("Content-Type", "ETag", "Cache-Control"):
        assert second.headers[header] == first.headers[header]
    assert last_loader().loads == 1


async def test_hits_keep_vary_and_max_age(aiohttp_client: Any, tmp_path: Path) -> None:
    cfg = config(file_storage(tmp_path), imaging={"auto_webp": True})
    client = await aiohttp_client(create_app(cfg))
    path = signed_path(KEY, "100x100/filters:max_age(60)/coffee.jpg")
    headers = {"Accept": "image/webp,*/*"}
    first = await client.get(path, headers=headers)
    await settle(client)
    second = await client.get(path, headers=headers)
    assert second.headers["X-Result-Storage"] == "hit"
    assert second.headers["Vary"] == first.headers["Vary"] == "Accept"
    assert second.headers["Cache-Control"] == "public, max-age=60"
    assert second.headers["Content-Type"] == "image/webp"


async def test_negotiated_formats_are_stored_apart(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(
        create_app(config(file_storage(tmp_path), imaging={"auto_webp": True}))
    )
    path = signed_path(KEY, "100x100/coffee.jpg")
    webp = await client.get(path, headers={"Accept": "image/webp"})
    await settle(client)
    jpeg = await client.get(path, headers={"Accept": "image/jpeg"})
    assert webp.headers["Content-Type"] == "image/webp"
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    assert "X-Result-Storage" not in jpeg.headers


async def test_key_rotation_and_unsafe_share_the_cache(aiohttp_client: Any, tmp_path: Path) -> None:
    storage = file_storage(tmp_path, store_unsafe=True)
    client = await aiohttp_client(create_app(config(storage)))
    await client.get(signed_path(KEY, "80x80/rocket.jpg"))
    await settle(client)
    rotated = config(
        storage, security={"key": "new-key", "previous_keys": [KEY], "allow_unsafe": True}
    )
    client2 = await aiohttp_client(create_app(rotated))
    response = await client2.get(signed_path("new-key", "80x80/rocket.jpg"))
    assert response.headers["X-Result-Storage"] == "hit"
    unsafe = await client2.get("/unsafe/80x80/rocket.jpg")
    assert unsafe.headers["X-Result-Storage"] == "hit"


async def test_unsafe_results_are_not_stored_by_default(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(config(file_storage(tmp_path))))
    await client.get("/unsafe/60x60/rocket.jpg")
    await settle(client)
    again = await client.get("/unsafe/60x60/rocket.jpg")
    assert "X-Result-Storage" not in again.headers
    assert last_loader().loads == 2
    assert not stored_files(tmp_path)


async def test_if_none_match_is_answered_from_metadata_alone(
    aiohttp_client: Any, s3_endpoint: str
) -> None:
    client = await aiohttp_client(create_app(config(moto_memory_storage(s3_endpoint))))
    path = signed_path(KEY, "120x90/coffee.jpg")
    first = await client.get(path)
    await settle(client)
    fake = MotoMemoryResultStorage.instances[-1]
    fake.collection.calls.clear()
    cached = await client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert cached.status == 304
    assert cached.headers["ETag"] == first.headers["ETag"]
    assert fake.counting_blobs.reads == 0
    assert fake.collection.calls == ["find_one"]
    full = await client.get(path)
    assert await full.read() == await first.read()
    assert fake.counting_blobs.reads == 1
    assert last_loader().loads == 1


async def test_redirect_mode_answers_302_without_reading(
    aiohttp_client: Any, s3_endpoint: str
) -> None:
    storage = moto_memory_storage(s3_endpoint, public_url="https://cdn.example.com/{object_key}")
    client = await aiohttp_client(create_app(config(storage)))
    path = signed_path(KEY, "64x64/chelsea.jpg")
    await client.get(path)
    await settle(client)
    response = await client.get(path, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith("https://cdn.example.com/results/chelsea.jpg/")
    assert MotoMemoryResultStorage.instances[-1].counting_blobs.reads == 0


async def test_a_vanished_object_is_rendered_again(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(config(file_storage(tmp_path))))
    path = signed_path(KEY, "50x50/coffee.jpg")
    await client.get(path)
    await settle(client)
    for data_file in stored_files(tmp_path):
        data_file.unlink()
    again = await client.get(path)
    assert again.status == 200
    assert "X-Result-Storage" not in again.headers
    assert last_loader().loads == 2


async def test_concurrent_identical_requests_load_once(aiohttp_client: Any) -> None:
    cfg = config({"use": None}, loader={"delay": 0.2})
    client = await aiohttp_client(create_app(cfg))
    path = signed_path(KEY, "200x100/smart/astronaut.jpg")
    responses = await asyncio.gather(*(client.get(path) for _ in range(20)))
    bodies = {await r.read() for r in responses}
    assert {r.status for r in responses} == {200}
    assert len(bodies) == 1
    assert last_loader().loads == 1


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def dead_storage(port: int, **extra: Any) -> dict[str, Any]:
    """An ``s3`` result storage whose S3 and MongoDB are both at ``port`` (closed or silent)."""
    return {
        "use": "s3",
        "timeout": 1.0,
        "settings": {
            "bucket": "results",
            "endpoint_url": f"http://127.0.0.1:{port}",
            "connect_timeout": 0.5,
            "read_timeout": 0.5,
            "metadata": {
                "uri": f"mongodb://127.0.0.1:{port}/?directConnection=true",
                "timeout_ms": 300,
            },
        },
        **extra,
    }


@pytest.mark.parametrize("target", ["closed", "hanging"])
async def test_storage_outages_degrade_to_rendering(
    aiohttp_client: Any, target: str, hanging_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port() if target == "closed" else hanging_port
    client = await aiohttp_client(create_app(config(dead_storage(port))))
    path = signed_path(KEY, "90x90/rocket.jpg")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="thumbor_py.results"):
        first = await client.get(path)
        second = await client.get(path)
    elapsed = time.monotonic() - started
    assert (first.status, second.status) == (200, 200)
    assert (await first.read()) == (await second.read())
    assert elapsed < 3.0, f"a dead storage stalled requests for {elapsed:.1f}s"
    guard_counters = client.app[STORAGE_KEY].counters
    assert guard_counters.error >= 1
    assert guard_counters.skipped >= 1
    # One line per pause: where, what, for how long; not the driver's topology dump.
    # (The purge log, beside the same dead MongoDB, logs its own line under its own name.)
    guard_lines = [r for r in caplog.records if r.name == "thumbor_py.results"]
    (line,) = [r.getMessage() for r in guard_lines if "failed" in r.getMessage()]
    assert line.startswith("result storage get failed: ")
    assert "pausing it for 10s" in line
    assert len(line) < 160
    if target == "closed":
        assert f"MongoDB 127.0.0.1:{port}: ServerSelectionTimeoutError" in line


async def test_readyz_stays_ready_while_the_storage_is_down(aiohttp_client: Any) -> None:
    port = free_port()
    client = await aiohttp_client(create_app(config(dead_storage(port))))
    ready = await client.get("/readyz")
    assert (ready.status, await ready.text()) == (200, "READY")
    image = await client.get(signed_path(KEY, "40x40/rocket.jpg"))
    assert image.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "thumbor_py_result_storage_degraded 1.0" in metrics
    assert 'thumbor_py_result_storage_total{outcome="error"}' in metrics


async def test_readyz_can_require_the_storage_and_names_no_host(aiohttp_client: Any) -> None:
    port = free_port()
    storage = dead_storage(port, required_for_readiness=True)
    client = await aiohttp_client(create_app(config(storage)))
    response = await client.get("/readyz")
    assert response.status == 503
    text = await response.text()
    assert text == "not ready: result storage unavailable"
    assert str(port) not in text
    assert response.headers["Cache-Control"] == "no-store"


async def test_readyz_names_no_storage_path(aiohttp_client: Any, tmp_path: Path) -> None:
    root = tmp_path / "results"
    root.write_text("a file where the storage folder should be")
    storage = file_storage(root, required_for_readiness=True)
    client = await aiohttp_client(create_app(config(storage)))
    response = await client.get("/readyz")
    assert response.status == 503
    assert str(tmp_path) not in await response.text()


async def test_a_purge_during_an_outage_is_a_503(aiohttp_client: Any) -> None:
    port = free_port()
    client = await aiohttp_client(create_app(config(dead_storage(port), admin={"token": "s3cret"})))
    response = await client.delete(
        "/admin/results?source=rocket.jpg", headers={"Authorization": "Bearer s3cret"}
    )
    assert response.status == 503
    text = await response.text()
    assert text == "result storage unavailable: the purge did not finish, try again"


async def test_a_storage_plugin_bug_does_not_pause_the_storage(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = {"use": "tests.test_result_storage_http:BuggyResultStorage", "settings": {}}
    client = await aiohttp_client(create_app(config(storage)))
    path = signed_path(KEY, "30x30/rocket.jpg")
    with caplog.at_level(logging.ERROR, logger="thumbor_py.results"):
        responses = [await client.get(path) for _ in range(2)]
    assert [r.status for r in responses] == [200, 200]
    guard = client.app[STORAGE_KEY]
    assert guard.available
    assert guard.counters.bug >= 2  # every request still tried the storage
    # (The assembly's warning that a custom storage gives no shared purge log is not one.)
    guard_records = [r for r in caplog.records if r.name == "thumbor_py.results"]
    assert all(r.exc_info is not None for r in guard_records)


class BuggyResultStorage:
    """A storage plugin with a bug: every lookup raises a TypeError."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        pass

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        pass

    async def get(self, key: str) -> StoredResult | None:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        return None

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        pass

    async def delete(self, key: str) -> None:
        pass

    async def purge(self, source: str) -> int:
        return 0


async def test_admin_purge_needs_the_token(aiohttp_client: Any, tmp_path: Path) -> None:
    cfg = config(file_storage(tmp_path), admin={"token": "s3cret"})
    client = await aiohttp_client(create_app(cfg))
    path = signed_path(KEY, "40x40/coffee.jpg")
    await client.get(path)
    await settle(client)
    denied = await client.delete("/admin/results?source=coffee.jpg")
    assert denied.status == 401
    wrong = await client.delete(
        "/admin/results?source=coffee.jpg", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status == 401
    done = await client.delete(
        "/admin/results?source=coffee.jpg", headers={"Authorization": "Bearer s3cret"}
    )
    assert done.status == 200
    assert await done.json() == {"source": "coffee.jpg", "purged": 1}
    again = await client.get(path)
    assert "X-Result-Storage" not in again.headers


async def test_admin_endpoint_is_off_without_a_token(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(config(file_storage(tmp_path))))
    response = await client.delete("/admin/results?source=coffee.jpg")
    assert response.status == 405


def test_samples_exist() -> None:
    assert (SAMPLES / "coffee.jpg").is_file()


async def test_purge_command_deletes_stored_variants(aiohttp_client: Any, tmp_path: Path) -> None:
    root = tmp_path / "results"
    client = await aiohttp_client(create_app(config(file_storage(root))))
    for size in ("30x30", "60x60"):
        await client.get(signed_path(KEY, f"{size}/coffee.jpg"))
    await client.get(signed_path(KEY, "30x30/rocket.jpg"))
    await settle(client)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"security: {{key: {KEY}}}\n"
        f"loader: {{use: file, settings: {{root: {SAMPLES}}}}}\n"
        f"result_storage: {{use: file, settings: {{root: {root}}}}}\n"
    )
    command = [sys.executable, "-m", "thumbor_py", "purge", "-c", str(config_file)]
    done = await asyncio.to_thread(
        subprocess.run, [*command, "--source", "coffee.jpg"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "purged 2 stored variant(s) of coffee.jpg"
    assert len(stored_files(root)) == 1
    again = await client.get(signed_path(KEY, "30x30/coffee.jpg"))
    assert "X-Result-Storage" not in again.headers


async def test_the_purge_command_reports_an_outage_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"security: {{key: {KEY}}}\n"
        "result_storage:\n"
        "  use: s3\n"
        "  settings:\n"
        "    bucket: results\n"
        f"    endpoint_url: http://127.0.0.1:{port}\n"
        "    max_attempts: 1\n"
        f"    metadata: {{uri: 'mongodb://127.0.0.1:{port}/?directConnection=true',"
        " timeout_ms: 200}\n"
    )
    command = [sys.executable, "-m", "thumbor_py", "purge", "-c", str(config_file)]
    done = await asyncio.to_thread(
        subprocess.run, [*command, "--source", "coffee.jpg"], capture_output=True, text=True
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == "thumbor-py: result storage unavailable: the purge did not finish, try again"
    assert "Traceback" not in done.stderr


class AnyNameLoader:
    """Serves one sample image whatever the source is named."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        pass

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self._data = (SAMPLES / "coffee.jpg").read_bytes()

    async def load(self, source: str) -> Source:
        return Source(data=self._data, content_type="image/jpeg")


@pytest.mark.parametrize(
    ("image", "location_path"),
    [
        pytest.param("a%3Fb.jpg", "a%3Fb.jpg", id="question-mark"),
        pytest.param("a%23b.jpg", "a%23b.jpg", id="hash"),
        pytest.param("a%20b.jpg", "a%20b.jpg", id="space"),
        pytest.param("a%2541.jpg", "a%2541.jpg", id="percent-41"),
        pytest.param("x/%2E%2E/a.jpg", "x/%252E%252E/a.jpg", id="dot-dot"),
        pytest.param("a%0Db.jpg", "a%250Db.jpg", id="CR"),
    ],
)
async def test_redirect_locations_are_percent_encoded(
    aiohttp_client: Any, s3_endpoint: str, image: str, location_path: str
) -> None:
    storage = moto_memory_storage(s3_endpoint, public_url="https://cdn.example.com/{object_key}")
    cfg = Config.from_mapping(
        {
            "security": {"key": KEY},
            "loader": {"use": "tests.test_result_storage_http:AnyNameLoader", "settings": {}},
            "result_storage": storage,
        },
        env={},
    )
    client = await aiohttp_client(create_app(cfg))
    path = URL(signed_path(KEY, f"32x32/{image}"), encoded=True)  # sent as written
    first = await client.get(path)
    assert first.status == 200
    await settle(client)
    hit = await client.get(path, allow_redirects=False)
    assert hit.status == 302
    location = hit.headers["Location"]
    assert location.startswith(f"https://cdn.example.com/results/{location_path}/")
    assert location.endswith(".jpg")
