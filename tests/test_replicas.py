"""Across real processes: two `thumbor-py serve` replicas (separate ports, one worker each)
share the originals (moto's S3 server, or a folder), the file result storage and the purge log
beside it. A purge on one replica (endpoint or CLI, any spelling) or, without purge, the
revalidation age is enough for the other to serve the new original; the same holds between
the workers of one server."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import boto3
import pytest
from PIL import Image

from tests.conftest import REPO, free_port, serve_process, stop_server, wait_for_port

TOKEN = "replica-token"
RED, BLUE = (220, 20, 20), (20, 20, 220)


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def replace_file(path: Path, color: tuple[int, int, int]) -> None:
    aside = path.with_suffix(".tmp")
    aside.write_bytes(jpeg(color))
    os.replace(aside, path)


def write_config(
    tmp_path: Path, name: str, loader: str, *, workers: int = 1, revalidate_after: str = "null"
) -> Path:
    path = tmp_path / f"{name}.yaml"
    lines = [
        "security: {allow_unsafe: true}",
        f"loader: {loader}",
        "result_storage: {use: file, store_unsafe: true, settings: {root: "
        f"{tmp_path / 'results'}}}}}",
        f"admin: {{token: {TOKEN}}}",
        "coherence: {check_interval: 0.1}",
        f"server: {{workers: {workers}, request_timeout: 20}}",
        f"imaging: {{detectors: [], revalidate_after: {revalidate_after}}}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """A `thumbor-py serve` process for ``config``; yields its base URL."""
    port = free_port()
    process = serve_process(config, port)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)  # the supervisor stops its workers


async def color(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        body = await response.read()
        assert response.status == 200, body[:200]
    red, _, blue = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    return "red" if red > blue else "blue"


async def colors(session: aiohttp.ClientSession, base: str, paths: list[str]) -> list[str]:
    return [await color(session, f"{base}/unsafe/{path}") for path in paths]


async def purge(session: aiohttp.ClientSession, base: str, source: str) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.delete(
        f"{base}/admin/results", params={"source": source}, headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        return int((await response.json())["purged"])


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[tuple[str, object]]:
    name = f"replicas-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name, client
    client.close()


async def test_a_purge_on_one_replica_wins_on_the_other(
    tmp_path: Path, s3_endpoint: str, s3_bucket: tuple[str, object]
) -> None:
    bucket, s3 = s3_bucket
    put = s3.put_object  # type: ignore[attr-defined]
    put(Bucket=bucket, Key="photo.jpg", Body=jpeg(RED))
    loader = f"{{use: s3, settings: {{bucket: {bucket}, endpoint_url: '{s3_endpoint}'}}}}"
    config_a = write_config(tmp_path, "a", loader)
    config_b = write_config(tmp_path, "b", loader)
    stored = ["100x0/photo.jpg", "120x0/%2Fphoto.jpg"]
    fresh = ["90x0/photo.jpg", f"80x0/s3://{bucket}/photo.jpg"]
    with ExitStack() as stack:
        replica_a = stack.enter_context(serving(config_a))
        replica_b = stack.enter_context(serving(config_b))
        async with aiohttp.ClientSession() as session:
            assert await colors(session, replica_a, stored) == ["red"] * 2
            assert await colors(session, replica_b, stored) == ["red"] * 2  # B decodes too
            await asyncio.sleep(0.3)  # the background writes land

            put(Bucket=bucket, Key="photo.jpg", Body=jpeg(BLUE))
            assert await purge(session, replica_a, f"s3://{bucket}/photo.jpg") >= 2
            assert await colors(session, replica_b, stored + fresh) == ["blue"] * 4
            assert await colors(session, replica_a, stored + fresh) == ["blue"] * 4
            await asyncio.sleep(0.3)

            put(Bucket=bucket, Key="photo.jpg", Body=jpeg(RED))
            started = time.monotonic()
            command = [sys.executable, "-m", "thumbor_py", "purge", "--config", str(config_b)]
            done = await asyncio.to_thread(
                subprocess.run,
                [*command, "--source", "/photo.jpg"],
                cwd=REPO,
                capture_output=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert time.monotonic() - started < 15
            assert await colors(session, replica_a, stored + fresh) == ["red"] * 4
            assert await colors(session, replica_b, stored + fresh) == ["red"] * 4


async def test_without_purge_the_other_replica_sees_the_new_original_after_revalidate_after(
    tmp_path: Path, s3_endpoint: str, s3_bucket: tuple[str, object]
) -> None:
    bucket, s3 = s3_bucket
    put = s3.put_object  # type: ignore[attr-defined]
    put(Bucket=bucket, Key="photo.jpg", Body=jpeg(RED))
    loader = f"{{use: s3, settings: {{bucket: {bucket}, endpoint_url: '{s3_endpoint}'}}}}"
    config_a = write_config(tmp_path, "a", loader, revalidate_after="1.0")
    config_b = write_config(tmp_path, "b", loader, revalidate_after="1.0")
    paths = ["100x0/photo.jpg", "120x0/%2Fphoto.jpg"]
    with ExitStack() as stack:
        replica_a = stack.enter_context(serving(config_a))
        replica_b = stack.enter_context(serving(config_b))
        async with aiohttp.ClientSession() as session:
            assert await colors(session, replica_a, paths) == ["red"] * 2
            assert await colors(session, replica_b, paths) == ["red"] * 2
            put(Bucket=bucket, Key="photo.jpg", Body=jpeg(BLUE))  # a new ETag
            await asyncio.sleep(1.1)
            assert await colors(session, replica_b, [*paths, "90x0/photo.jpg"]) == ["blue"] * 3
            assert await colors(session, replica_a, [*paths, "90x0/photo.jpg"]) == ["blue"] * 3


async def test_a_purge_reaches_every_worker_of_one_server(tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    replace_file(originals / "photo.jpg", RED)
    loader = f"{{use: file, settings: {{root: {originals}}}}}"
    config = write_config(tmp_path, "server", loader, workers=2)
    paths = [f"{width}x0/photo.jpg" for width in range(100, 116)]
    with serving(config) as server:
        async with aiohttp.ClientSession() as session:
            # Concurrent requests spread over both workers: each decodes and caches.
            found = await asyncio.gather(*(color(session, f"{server}/unsafe/{p}") for p in paths))
            assert found == ["red"] * len(paths)
            await asyncio.sleep(0.3)
            replace_file(originals / "photo.jpg", BLUE)
            await purge(session, server, "./photo.jpg")
            again = [f"{server}/unsafe/{p}" for p in [*paths, "99x0/photo.jpg"]]
            found = await asyncio.gather(*(color(session, url) for url in again))
            assert found == ["blue"] * len(again)
