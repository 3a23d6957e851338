"""End to end: ``routes`` in the config send sources to the HTTP and S3 loaders via create_app."""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from tests.loaders.http_origin import IMAGE
from thumbor_py.app import create_app
from thumbor_py.config import Config

OPEN = {"allow_private_networks": True}  # the origin is on loopback, on purpose
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]


def _config(s3_endpoint: str, bucket: str, **http: object) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "imaging": {"max_source_bytes": 200_000},
            "loader": {"use": "file", "settings": {"root": str(SAMPLES)}},
            "routes": [
                {
                    "prefix": "s3://",
                    "loader": {
                        "use": "s3",
                        "settings": {"endpoint_url": s3_endpoint, "allowed_buckets": [bucket]},
                    },
                },
                {"prefix": "http://", "loader": {"use": "http", "settings": http}},
                {"prefix": "https://", "loader": {"use": "http", "settings": http}},
            ],
        },
        env={},
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket holding ``cat.jpg``."""
    name = f"app-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="cat.jpg", Body=IMAGE, ContentType="image/jpeg")
    client.close()
    return name


async def _client(aiohttp_client: Any, config: Config) -> Client:
    client: Client = await aiohttp_client(create_app(config))
    return client


def _size(body: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(body)) as image:
        return image.size


async def test_serves_from_s3_http_and_file_in_one_app(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, origin: str
) -> None:
    # The origin is on loopback, so the http route opens private networks on purpose here.
    client = await _client(aiohttp_client, _config(s3_endpoint, bucket, **OPEN))
    for source in [f"s3://{bucket}/cat.jpg", f"{origin}/image.jpg", "chelsea.jpg"]:
        response = await client.get(f"/unsafe/60x40/{source}")
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "image/jpeg"
        assert _size(await response.read()) == (60, 40)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/status/404", 404, id="upstream-404"),
        pytest.param("/status/500", 502, id="upstream-500"),
        pytest.param("/huge-chunked", 400, id="too-large"),
        pytest.param("/text", 400, id="not-an-image"),
        pytest.param("/redirect%3Furl%3Dhttp://169.254.169.254/latest/", 400, id="ssrf"),
    ],
)
async def test_http_refusals_have_the_documented_status(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, origin: str, path: str, status: int
) -> None:
    # Only the origin's own address is opened: the guard still refuses everything else.
    opened = {"allowed_networks": ["127.0.0.1/32"]}
    client = await _client(aiohttp_client, _config(s3_endpoint, bucket, **opened))
    response = await client.get(f"/unsafe/{origin}{path}")
    assert response.status == status
    body = await response.text()
    assert "\n" not in body.strip()
    assert "Traceback" not in body


async def test_guard_is_on_by_default(aiohttp_client: Any, s3_endpoint: str, bucket: str) -> None:
    client = await _client(aiohttp_client, _config(s3_endpoint, bucket))
    response = await client.get("/unsafe/http://127.0.0.1:1/image.jpg")
    assert response.status == 400
    assert await response.text() == "source address refused: loopback"


@pytest.mark.parametrize(
    ("source", "status"),
    [
        pytest.param("s3://{bucket}/missing.jpg", 404, id="missing"),
        pytest.param("s3://other-bucket/cat.jpg", 400, id="bucket-not-allowed"),
    ],
)
async def test_s3_refusals_have_the_documented_status(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, source: str, status: int
) -> None:
    client = await _client(aiohttp_client, _config(s3_endpoint, bucket))
    response = await client.get(f"/unsafe/{source.format(bucket=bucket)}")
    assert response.status == status
