"""The S3 loader's identity (``s3://bucket/key``, prefix included) and its HEAD revalidation,
against moto's server mode."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import boto3
import pytest

from loaders.s3 import S3Loader
from thumbor_py.errors import SourceForbiddenError, SourceNotFoundError
from thumbor_py.plugins import PluginContext


@pytest.fixture
async def s3(s3_endpoint: str) -> AsyncIterator[tuple[S3Loader, str, object]]:
    name = f"coherence-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="img/a.jpg", Body=b"one")
    settings = S3Loader.Settings(bucket=name, prefix="img/", endpoint_url=s3_endpoint)
    loader = S3Loader(settings, PluginContext(max_source_bytes=1000))
    await loader.start()
    yield loader, name, client
    await loader.aclose()
    client.close()


async def test_every_spelling_of_one_object_has_one_identity(
    s3: tuple[S3Loader, str, object],
) -> None:
    loader, bucket, _ = s3
    spellings = ["a.jpg", "/a.jpg", f"s3://{bucket}/a.jpg", f"s3://{bucket}//a.jpg"]
    assert {loader.identity(s) for s in spellings} == {f"s3://{bucket}/img/a.jpg"}
    assert (await loader.load("/a.jpg")).identity == f"s3://{bucket}/img/a.jpg"
    with pytest.raises(SourceForbiddenError):
        loader.identity("x/../a.jpg")


async def test_a_replaced_object_fails_its_head_revalidation(
    s3: tuple[S3Loader, str, object],
) -> None:
    loader, bucket, client = s3
    version = (await loader.load("a.jpg")).version
    assert version is not None
    assert await loader.unchanged("a.jpg", version)
    client.put_object(Bucket=bucket, Key="img/a.jpg", Body=b"two")  # type: ignore[attr-defined]
    assert not await loader.unchanged("a.jpg", version)
    client.delete_object(Bucket=bucket, Key="img/a.jpg")  # type: ignore[attr-defined]
    with pytest.raises(SourceNotFoundError):
        await loader.unchanged("a.jpg", version)
