"""The S3 loader through boto3 over HTTP against moto's server mode on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from loaders.s3 import S3Loader, translate_error
from tests.loaders.http_origin import IMAGE
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.errors import (
    HttpError,
    SourceForbiddenError,
    SourceNotFoundError,
    SourceTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thumbor_py.plugins import PluginContext

MAX_BYTES = 200_000
MakeS3 = Callable[..., Awaitable[S3Loader]]


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket holding ``photos/cat.jpg``, ``big.bin`` and ``text.txt``."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="photos/cat.jpg", Body=IMAGE, ContentType="image/jpeg")
    client.put_object(Bucket=name, Key="big.bin", Body=b"\0" * (MAX_BYTES + 1))
    client.put_object(Bucket=name, Key="text.txt", Body=b"not an image")
    yield name
    client.close()


@pytest.fixture
async def make_s3(s3_endpoint: str) -> AsyncIterator[MakeS3]:
    """``await make_s3(bucket=..., ...)`` → a started ``S3Loader`` on the moto endpoint."""
    made: list[S3Loader] = []

    async def make(**settings: Any) -> S3Loader:
        settings.setdefault("endpoint_url", s3_endpoint)
        settings.setdefault("region", "us-east-1")
        loader = S3Loader(S3Loader.Settings(**settings), PluginContext(max_source_bytes=MAX_BYTES))
        await loader.start()
        made.append(loader)
        return loader

    yield make
    for loader in made:
        await loader.aclose()


async def test_loads_an_object_with_its_metadata(make_s3: MakeS3, bucket: str) -> None:
    loader = await make_s3(bucket=bucket)
    source = await loader.load("photos/cat.jpg")
    assert source.data == IMAGE
    assert source.content_type == "image/jpeg"
    assert source.etag
    assert source.etag.startswith('"')
    assert source.last_modified is not None


@pytest.mark.parametrize(
    ("settings", "source"),
    [
        pytest.param({}, "{bucket}/photos/cat.jpg", id="bucket-from-first-segment"),
        pytest.param({}, "s3://{bucket}/photos/cat.jpg", id="s3-url"),
        pytest.param({"fixed": True}, "s3://{bucket}/photos/cat.jpg", id="s3-url-fixed-bucket"),
        pytest.param({"fixed": True}, "/photos/cat.jpg", id="leading-slash"),
        pytest.param({"fixed": True, "prefix": "photos/"}, "cat.jpg", id="key-prefix"),
        pytest.param({"allowed": True}, "{bucket}/photos/cat.jpg", id="allowed-buckets"),
    ],
)
async def test_source_forms(
    make_s3: MakeS3, bucket: str, settings: dict[str, Any], source: str
) -> None:
    loader = await make_s3(
        bucket=bucket if settings.get("fixed") else None,
        prefix=settings.get("prefix", ""),
        allowed_buckets=(bucket,) if settings.get("allowed") else (),
    )
    assert (await loader.load(source.format(bucket=bucket))).data == IMAGE


@pytest.mark.parametrize(
    ("settings", "source", "error"),
    [
        pytest.param({"fixed": True}, "photos/dog.jpg", SourceNotFoundError, id="no-such-key"),
        pytest.param({}, "no-such-bucket-x/cat.jpg", SourceNotFoundError, id="no-such-bucket"),
        pytest.param({}, "{bucket}", SourceNotFoundError, id="no-key"),
        pytest.param({}, "bad*bucket/cat.jpg", SourceNotFoundError, id="invalid-bucket"),
        pytest.param({"fixed": True}, "s3://other/cat.jpg", SourceForbiddenError, id="other"),
        pytest.param({"allowed": True}, "other/cat.jpg", SourceForbiddenError, id="not-allowed"),
        pytest.param(
            {"fixed": True, "prefix": "public/"},
            "../photos/cat.jpg",
            SourceForbiddenError,
            id="dot-dot-out-of-prefix",
        ),
        pytest.param({"fixed": True}, "big.bin", SourceTooLargeError, id="too-large"),
    ],
)
async def test_refusals(
    make_s3: MakeS3,
    bucket: str,
    settings: dict[str, Any],
    source: str,
    error: type[HttpError],
) -> None:
    loader = await make_s3(
        bucket=bucket if settings.get("fixed") else None,
        prefix=settings.get("prefix", ""),
        allowed_buckets=(bucket,) if settings.get("allowed") else (),
    )
    with pytest.raises(error) as caught:
        await loader.load(source.format(bucket=bucket))
    assert type(caught.value) is error


async def test_non_image_objects_pass_through(make_s3: MakeS3, bucket: str) -> None:
    loader = await make_s3(bucket=bucket)
    assert (await loader.load("text.txt")).data == b"not an image"


async def test_concurrent_loads_share_one_client(make_s3: MakeS3, bucket: str) -> None:
    loader = await make_s3(bucket=bucket, max_pool_connections=8)
    results = await asyncio.gather(*(loader.load("photos/cat.jpg") for _ in range(32)))
    assert all(result.data == IMAGE for result in results)


async def test_connection_refused_is_a_bad_gateway(make_s3: MakeS3) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loader = await make_s3(bucket="b", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    with pytest.raises(UpstreamError) as caught:
        await loader.load("cat.jpg")
    assert type(caught.value) is UpstreamError


async def test_a_silent_endpoint_times_out(make_s3: MakeS3) -> None:
    # Accepts connections, never answers.
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loader = await make_s3(
        bucket="b", endpoint_url=f"http://127.0.0.1:{port}", read_timeout=0.3, max_attempts=1
    )
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await loader.load("cat.jpg")
    assert time.monotonic() - started < 2
    server.close()


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        pytest.param(_client_error("NoSuchKey", 404), SourceNotFoundError, id="NoSuchKey"),
        pytest.param(_client_error("AccessDenied", 403), SourceNotFoundError, id="AccessDenied"),
        pytest.param(_client_error("403", 403), SourceNotFoundError, id="head-403"),
        pytest.param(_client_error("InternalError", 500), UpstreamError, id="500"),
        pytest.param(_client_error("InvalidAccessKeyId", 403), UpstreamError, id="bad-key"),
        pytest.param(_client_error("ExpiredToken", 400), UpstreamError, id="expired-token"),
        pytest.param(NoCredentialsError(), UpstreamError, id="no-credentials"),
        pytest.param(_client_error("SlowDown", 503), UpstreamError, id="SlowDown"),
        pytest.param(ConnectTimeoutError(endpoint_url="http://x"), UpstreamTimeoutError, id="ct"),
        pytest.param(ReadTimeoutError(endpoint_url="http://x"), UpstreamTimeoutError, id="rt"),
        pytest.param(
            EndpointConnectionError(endpoint_url="http://x", error=socket.gaierror(-2, "x")),
            UpstreamTimeoutError,
            id="dns",
        ),
        pytest.param(
            EndpointConnectionError(endpoint_url="http://x", error=ConnectionRefusedError()),
            UpstreamError,
            id="refused",
        ),
    ],
)
def test_translate_error(exc: ClientError, error: type[HttpError]) -> None:
    assert type(translate_error(exc)) is error


def test_bad_settings_are_refused() -> None:
    context = PluginContext(max_source_bytes=1)
    for settings in [
        S3Loader.Settings(bucket="bad bucket"),
        S3Loader.Settings(max_pool_connections=0),
        S3Loader.Settings(read_timeout=0),
    ]:
        with pytest.raises(ValueError):
            S3Loader(settings, context)


async def test_no_credentials_is_a_502_that_says_so_logged_once(
    make_s3: MakeS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    loader = await make_s3(bucket=bucket, max_attempts=1)
    with caplog.at_level(logging.WARNING, logger="loaders.s3"):
        for _ in range(3):
            with pytest.raises(UpstreamError) as caught:
                await loader.load("photos/cat.jpg")
    assert caught.value.status == 502
    assert (
        caught.value.reason == "the S3 storage refused access: the loader's key has no credentials"
    )
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "NoCredentialsError" in record.getMessage()
    assert bucket in record.getMessage()


def fake_s3(status: int, code: str) -> web.Application:
    """An S3 endpoint that answers every request with one S3 error document."""

    async def answer(_request: web.Request) -> web.Response:
        body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>no</Message></Error>"
        return web.Response(status=status, text=body, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@pytest.mark.parametrize(
    ("status", "code", "error", "text"),
    [
        pytest.param(403, "AccessDenied", SourceNotFoundError, "AccessDenied (403)", id="403"),
        pytest.param(
            403, "InvalidAccessKeyId", UpstreamError, "InvalidAccessKeyId (403)", id="bad-key"
        ),
        pytest.param(
            403, "SignatureDoesNotMatch", UpstreamError, "SignatureDoesNotMatch", id="bad-secret"
        ),
        pytest.param(500, "InternalError", UpstreamError, "InternalError (500)", id="500"),
    ],
)
async def test_refusals_are_logged_once_with_their_cause(
    make_s3: MakeS3,
    aiohttp_server: Any,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
    error: type[HttpError],
    text: str,
) -> None:
    server = await aiohttp_server(fake_s3(status, code))
    loader = await make_s3(
        bucket="photos",
        endpoint_url=str(server.make_url("")),
        addressing_style="path",
        max_attempts=1,
    )
    with caplog.at_level(logging.WARNING, logger="loaders.s3"):
        for _ in range(3):
            with pytest.raises(error) as caught:
                await loader.load("cat.jpg")
            assert type(caught.value) is error
    (record,) = caplog.records
    assert text in record.getMessage()
    assert "secret" not in caught.value.reason.lower()
    if error is UpstreamError and status == 403:
        assert caught.value.reason.startswith("the S3 storage refused access")


async def test_a_plain_missing_object_is_not_logged(
    make_s3: MakeS3, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    loader = await make_s3(bucket=bucket)
    with (
        caplog.at_level(logging.WARNING, logger="loaders.s3"),
        pytest.raises(SourceNotFoundError),
    ):
        await loader.load("photos/dog.jpg")
    assert caplog.records == []


async def test_no_credentials_through_http_is_a_one_line_502(
    aiohttp_client: Any,
    bucket: str,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings = {"bucket": bucket, "endpoint_url": s3_endpoint, "max_attempts": 1}
    config = Config.from_mapping(
        {"security": {"allow_unsafe": True}, "loader": {"use": "s3", "settings": settings}},
        env={},
    )
    client = await aiohttp_client(create_app(config))
    response = await client.get("/unsafe/photos/cat.jpg")
    assert response.status == 502
    text = await response.text()
    assert text == "the S3 storage refused access: the loader's key has no credentials"
    assert "testing" not in text


async def test_an_unreachable_endpoint_is_logged_once_for_every_key(
    make_s3: MakeS3, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loader = await make_s3(bucket="b", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    with caplog.at_level(logging.WARNING, logger="loaders.s3"):
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            with pytest.raises(UpstreamError):
                await loader.load(name)
    (record,) = caplog.records
    assert "EndpointConnectionError" in record.getMessage()
    assert "a.jpg" not in record.getMessage()
