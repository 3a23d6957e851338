"""Operations: Prometheus metrics that add up, request ids in logs, readiness, and a SIGTERM
under load that loses no request and no pending result-storage write."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, serve_process, stop_server, wait_for_port
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.logs import JsonFormatter, RequestIdFilter


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of metric family ``name`` by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for key, value in samples(text, name).items()
        if all((k, v) in key for k, v in labels.items())
    )


def base_config(**sections: Any) -> Config:
    data: dict[str, Any] = {"security": {"allow_unsafe": True}, **sections}
    return Config.from_mapping(data, env={})


async def test_metrics_add_up_to_the_requests_sent(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(base_config()))
    before = await (await client.get("/metrics")).text()
    urls = ["/unsafe/40x40/coffee.jpg"] * 3 + ["/unsafe/missing.jpg"] * 2 + ["/bad"]
    for path in [*urls, "/healthcheck"]:
        await client.get(path)
    response = await client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    after = await response.text()

    def delta(**labels: str) -> float:
        name = "thumbor_py_requests_total"
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta(route="image", status="200") == 3
    assert delta(route="image", status="404") == 2
    assert delta(route="image", status="400") == 1
    assert delta(route="healthcheck", status="200") == 1
    assert delta(route="image") == len(urls)
    renders = total(after, "thumbor_py_stage_seconds_count", stage="render") - total(
        before, "thumbor_py_stage_seconds_count", stage="render"
    )
    assert renders == 3
    errors = total(after, "thumbor_py_loader_errors_total", kind="SourceNotFoundError") - total(
        before, "thumbor_py_loader_errors_total", kind="SourceNotFoundError"
    )
    assert errors == 2
    assert "thumbor_py_render_queue_depth" in after
    assert "thumbor_py_renders_in_flight" in after


async def test_metrics_token_is_required_when_set(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(base_config(metrics={"token": "m"})))
    assert (await client.get("/metrics")).status == 401
    ok = await client.get("/metrics", headers={"Authorization": "Bearer m"})
    assert ok.status == 200


async def test_request_id_is_taken_or_generated_and_echoed(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(base_config()))
    given = await client.get("/healthcheck", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/healthcheck")
    assert len(generated.headers["X-Request-ID"]) == 32
    hostile = await client.get("/healthcheck", headers={"X-Request-ID": "a b<script>"})
    assert hostile.headers["X-Request-ID"] != "a b<script>"


async def test_error_logs_carry_the_request_id(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    client = await aiohttp_client(create_app(base_config()))
    with caplog.at_level(logging.INFO, logger="thumbor_py"):
        await client.get("/unsafe/missing.jpg", headers={"X-Request-ID": "req-42"})
    lines = [r for r in caplog.records if "404" in r.getMessage()]
    assert len(lines) == 1
    assert getattr(lines[0], "request_id", None) == "req-42"


def test_json_log_lines_are_json_with_the_request_id() -> None:
    record = logging.LogRecord("thumbor_py", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello x"
    assert line["request_id"] == "-"
    assert line["level"] == "INFO"


async def test_readyz_reports_storage_health(aiohttp_client: Any, tmp_path: Path) -> None:
    healthy = base_config(result_storage={"use": "file", "settings": {"root": str(tmp_path)}})
    client = await aiohttp_client(create_app(healthy))
    ready = await client.get("/readyz")
    assert (ready.status, await ready.text()) == (200, "READY")
    port = free_port()
    dead = base_config(
        result_storage={
            "use": "s3",
            "timeout": 0.5,
            "required_for_readiness": True,  # the default reports ready, degraded
            "settings": {
                "bucket": "b",
                "endpoint_url": f"http://127.0.0.1:{port}",
                "metadata": {"uri": f"mongodb://127.0.0.1:{port}/", "timeout_ms": 200},
            },
        }
    )
    client = await aiohttp_client(create_app(dead))
    started = time.monotonic()
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503
    assert (await not_ready.text()).startswith("not ready: result storage")
    assert time.monotonic() - started < 2.5
    assert (await client.get("/healthcheck")).status == 200


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A real `thumbor-py serve` process (2 workers) with file result storage."""
    port = free_port()
    storage = tmp_path / "results"
    config = tmp_path / "config.yaml"
    config.write_text(
        "security: {allow_unsafe: true}\n"
        f"loader: {{use: file, settings: {{root: {REPO / 'samples'}}}}}\n"
        "result_storage: {use: file, store_unsafe: true, settings: {root: "
        f"{storage}}}}}\n"
        "server: {workers: 2, request_timeout: 20}\n"
    )
    process = serve_process(config, port, stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
        yield process, port, storage
    finally:
        stop_server(process)


async def test_metrics_aggregate_across_worker_processes(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    _, port, _ = server
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for size in range(30, 50):
            async with session.get(f"{base}/unsafe/{size}x{size}/chelsea.jpg") as response:
                assert response.status == 200
        async with session.get(f"{base}/metrics") as response:
            text = await response.text()
    assert total(text, "thumbor_py_requests_total", route="image", status="200") == 20


async def test_sigterm_under_load_loses_no_request_and_no_write(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, storage = server
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:

        async def fetch(size: int) -> int:
            url = f"{base}/unsafe/{size}x{size}/filters:blur(4)/rocket.jpg"
            async with session.get(url) as response:
                await response.read()
                return response.status

        requests = [asyncio.create_task(fetch(size)) for size in range(200, 240)]
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        statuses = await asyncio.gather(*requests, return_exceptions=True)
    code = await asyncio.to_thread(process.wait, 30)
    assert code == 0, process.stderr.read().decode() if process.stderr else ""
    completed = [s for s in statuses if s == 200]
    refused = [s for s in statuses if isinstance(s, aiohttp.ClientConnectorError)]
    # Requests accepted before SIGTERM complete; later ones are refused at connect, never cut.
    assert len(completed) + len(refused) == len(statuses), statuses
    assert completed
    stored = await asyncio.to_thread(lambda: list(storage.rglob("*.json")))
    assert len([p for p in stored if p.parent.name != "sources"]) == len(completed)
