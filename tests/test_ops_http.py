"""Operator-facing HTTP behaviour: undecodable Authorization headers, nosniff on every answer,
the admin route's methods, the access log's byte count and levels, and the request-latency
and per-process metrics."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import REPO
from tests.test_operations import samples
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.logs import AccessLogger

SAMPLES = REPO / "samples"


def make_config(**sections: Any) -> Config:
    data: dict[str, Any] = {
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": str(SAMPLES)}},
        "admin": {"token": "admin-token"},
        "metrics": {"token": "metrics-token"},
        **sections,
    }
    return Config.from_mapping(data, env={})


async def raw_request(port: int, head: bytes) -> bytes:
    """Send a hand-written request (bytes no HTTP client would send) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.parametrize("method_path", [b"GET /metrics", b"DELETE /admin/results?source=a.jpg"])
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"\xc3\x28", b"Bearer admin-token\x80"])
async def test_undecodable_authorization_is_401(
    aiohttp_client: Any, method_path: bytes, value: bytes
) -> None:
    client = await aiohttp_client(create_app(make_config()))
    head = method_path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + value
    answer = await raw_request(client.server.port, head + b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b"Traceback" not in answer


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        pytest.param("/unsafe/10x10/coffee.jpg", {}, 200, id="image"),
        pytest.param("/unsafe/10x10/nope.jpg", {}, 404, id="missing"),
        pytest.param("/nonsense", {}, 400, id="bad-url"),
        pytest.param("/healthcheck", {}, 200, id="healthcheck"),
        pytest.param("/metrics", {}, 401, id="metrics-401"),
        pytest.param("/admin/results", {}, 405, id="admin-get"),
    ],
)
async def test_every_answer_says_nosniff(
    aiohttp_client: Any, path: str, headers: dict[str, str], status: int
) -> None:
    client = await aiohttp_client(create_app(make_config()))
    response = await client.get(path, headers=headers)
    assert response.status == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_not_modified_says_nosniff(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(make_config()))
    first = await client.get("/unsafe/10x10/coffee.jpg")
    again = await client.get(
        "/unsafe/10x10/coffee.jpg", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status == 304
    assert again.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT"])
async def test_admin_results_answers_delete_only(aiohttp_client: Any, method: str) -> None:
    client = await aiohttp_client(create_app(make_config()))
    response = await client.request(method, "/admin/results?source=coffee.jpg")
    assert response.status == 405
    assert response.headers["Allow"] == "DELETE"


async def test_admin_results_without_a_token_allows_nothing(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(make_config(admin={})))
    response = await client.get("/admin/results")
    assert response.status == 405
    assert response.headers["Allow"] == ""


async def test_access_log_counts_body_bytes_and_warns_on_5xx(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = TestServer(
        create_app(make_config(server={"render_queue": 1, "request_timeout": 0.001}))
    )
    # TestServer drops constructor kwargs: the access logger is given where the runner is made.
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("test.access")
    )
    client = await aiohttp_client(server)
    with caplog.at_level(logging.INFO, logger="test.access"):
        ok = await client.get("/healthcheck")
        body = await ok.read()
        slow = await client.get("/unsafe/300x300/filters:blur(20)/rocket.jpg")
        await slow.read()
        await asyncio.sleep(0.05)  # the access line is written after the answer is sent
    records = {r.fields["path"]: r for r in caplog.records if r.name == "test.access"}  # type: ignore[attr-defined]
    assert records["/healthcheck"].fields["bytes"] == len(body) == len(b"WORKING")  # type: ignore[attr-defined]
    assert records["/healthcheck"].levelno == logging.INFO
    assert slow.status == 503
    assert records["/unsafe/300x300/filters:blur(20)/rocket.jpg"].levelno == logging.WARNING


async def test_request_latency_histogram_by_status_class(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(make_config(metrics={})))
    before = samples(
        await (await client.get("/metrics")).text(), "thumbor_py_request_seconds_count"
    )
    await client.get("/healthcheck")
    await client.get("/unsafe/10x10/nope.jpg")
    after = samples(await (await client.get("/metrics")).text(), "thumbor_py_request_seconds_count")

    def delta(status_class: str) -> float:
        key = (("status_class", status_class),)
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("4xx") == 1
    assert delta("2xx") == 2  # the health check and the first /metrics answer


_WORKERS_SCRIPT = """
import os, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from thumbor_py import metrics
pid = os.fork()
if pid == 0:
    metrics.observe_request(200, 0.01)
    metrics.sample_process()
    os._exit(0)
os.waitpid(pid, 0)
metrics.observe_request(503, 0.2)
body, _ = metrics.exposition()
print(os.getpid(), pid)
sys.stdout.write(body.decode())
"""


def test_process_metrics_and_latency_aggregate_across_workers(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WORKERS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    first, _, text = result.stdout.partition("\n")
    parent, child = first.split()
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"):
        found = samples(text, name)
        pids = {dict(labels)["pid"] for labels in found}
        assert pids == {parent, child}, (name, found)
    assert samples(text, "process_resident_memory_bytes")[(("pid", parent),)] > 1_000_000
    counts = samples(text, "thumbor_py_request_seconds_count")
    assert counts[(("status_class", "2xx"),)] == 1
    assert counts[(("status_class", "5xx"),)] == 1
