"""The upload API with originals in S3 (moto's server): the s3 loader reads them at once,
in Thumbor and Cloudimage URLs, and a replacement is never served stale."""

from __future__ import annotations

import io
from typing import Any

import boto3
from PIL import Image

from tests.repository.conftest import ADMIN, BLUE, auth, color_of, jpeg, keys
from thumbor_py.app import create_app
from thumbor_py.config import Config

HOST = {"Host": "media.miluv.app"}


def s3_config(endpoint: str, bucket: str) -> Config:
    return Config.from_mapping(
        {
            "loader": {
                "use": "s3",
                "settings": {"bucket": bucket, "prefix": "media/", "endpoint_url": endpoint},
            },
            "imaging": {"detectors": []},
            "coherence": {"check_interval": 0.05},
            "tenants": {
                "sites": [
                    {
                        "name": "miluv",
                        "hosts": ["media.miluv.app"],
                        "allow_unsafe": True,
                        "aliases": {"_media_": ""},
                        "repository": {
                            "enabled": True,
                            "allow_put": True,
                            "allow_delete": True,
                            "keys": keys(),
                        },
                    }
                ]
            },
        },
        env={},
    )


async def test_s3_originals_work_in_both_dialects_and_replace_is_never_stale(
    aiohttp_client: Any, s3_endpoint: str, bucket: str
) -> None:
    client = await aiohttp_client(create_app(s3_config(s3_endpoint, bucket)))
    posted = await client.post(
        "/image", data=jpeg(), headers={**HOST, **auth(ADMIN), "Slug": "cat.jpg"}
    )
    assert posted.status == 201, await posted.text()
    image_id = posted.headers["Location"].removeprefix("/image/")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    stored = s3.head_object(Bucket=bucket, Key=f"media/originals/{image_id}")
    assert stored["ContentType"] == "image/jpeg"
    thumbor = f"/unsafe/80x60/originals/{image_id}"
    cloudimage = f"/v7/_media_/originals/{image_id}?w=40&h=30&func=crop"
    for path, size in ((thumbor, (80, 60)), (cloudimage, (40, 30))):
        response = await client.get(path, headers=HOST)
        assert response.status == 200, (path, await response.text())
        body = await response.read()
        assert Image.open(io.BytesIO(body)).size == size
        assert color_of(body) == "red"
    put = await client.put(
        f"/image/{image_id}", data=jpeg(color=BLUE), headers={**HOST, **auth(ADMIN)}
    )
    assert put.status == 204
    for path in (thumbor, cloudimage):  # decoded-source cache and results: all purged
        assert color_of(await (await client.get(path, headers=HOST)).read()) == "blue"
    got = await client.get(f"/image/{image_id}", headers={**HOST, **auth(ADMIN)})
    assert color_of(await got.read()) == "blue"
    deleted = await client.delete(f"/image/{image_id}", headers={**HOST, **auth(ADMIN)})
    assert deleted.status == 204
    assert (await client.get(thumbor, headers=HOST)).status == 404
    assert (
        await client.delete(f"/image/{image_id}", headers={**HOST, **auth(ADMIN)})
    ).status == 404


async def test_an_explicit_s3_storage_behind_a_route(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, tmp_path: Any
) -> None:
    """Files by default, ``s3://`` by route: the repository names its storage and the
    route's prefix (``source_prefix``), and purges the spelling the route loader sees."""
    s3_loader = {"use": "s3", "settings": {"endpoint_url": s3_endpoint}}
    config = Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": "file", "settings": {"root": str(tmp_path)}},
            "routes": [{"prefix": "s3://", "loader": s3_loader}],
            "imaging": {"detectors": []},
            "coherence": {"check_interval": 0.05},
            "repository": {
                "enabled": True,
                "allow_put": True,
                "storage": {
                    "use": "s3",
                    "settings": {"bucket": bucket, "endpoint_url": s3_endpoint},
                },
                "source_prefix": f"s3://{bucket}/",
                "keys": keys(),
            },
        },
        env={},
    )
    client = await aiohttp_client(create_app(config))
    posted = await client.post("/image", data=jpeg(), headers=auth(ADMIN))
    assert posted.status == 201
    image_id = posted.headers["Location"].removeprefix("/image/")
    thumbor = f"/unsafe/64x48/s3://{bucket}/originals/{image_id}"
    first = await client.get(thumbor)
    assert first.status == 200, await first.text()
    assert color_of(await first.read()) == "red"
    put = await client.put(f"/image/{image_id}", data=jpeg(color=BLUE), headers=auth(ADMIN))
    assert put.status == 204
    assert color_of(await (await client.get(thumbor)).read()) == "blue"
