"""Origins: the query of an absolute origin reaches it byte for byte, in the plain form (the
plugin appends its parameters with ``&``) and with ``ci_url_encoded=1``; presigned S3 URLs
made by boto3 keep working through moto's server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.config import Config as BotoConfig
from yarl import URL

from tests.cloudimage.conftest import MakeClient, size_of, tenants_config
from tests.loaders.http_origin import IMAGE

MILUV = {"Host": "media.miluv.app"}
# What a presigned URL's query looks like: encoded slashes, a colon, a plus.
SIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261130%2Fus-east-1%2Fs3"
    "&X-Amz-Date=20261130T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&x-id=GetObject&X-Amz-Signature=0a1b%3A2c%2B3d~%7e"
)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[str]]]:
    """An origin that serves the sample image and records each raw path and query it got."""
    seen: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(request.rel_url.raw_path_qs)
        return web.Response(body=IMAGE, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", seen
    await server.close()


async def test_plain_form_keeps_the_origin_query_byte_for_byte(
    make_client: MakeClient, recorder: tuple[str, list[str]]
) -> None:
    base, seen = recorder
    client = await make_client(tenants_config(base))
    path = f"/v7/{base}/private/photo%20one.jpg?{SIGNED_QUERY}&w=120&h=80&func=crop"
    # Sent as is: the test client would otherwise normalise the query before the server.
    raw = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    response = await client.session.get(raw, headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (120, 80)
    assert seen == [f"/private/photo%20one.jpg?{SIGNED_QUERY}"]


async def test_url_encoded_form_keeps_the_origin_query_byte_for_byte(
    make_client: MakeClient, recorder: tuple[str, list[str]]
) -> None:
    base, seen = recorder
    client = await make_client(tenants_config(base))
    encoded = quote(f"{base}/photo.jpg?{SIGNED_QUERY}&w=999", safe="")
    response = await client.get(f"/v7/{encoded}?ci_url_encoded=1&w=60", headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read())[0] == 60
    # "w=999" belongs to the origin here: the whole origin was encoded in the path.
    assert seen == [f"/photo.jpg?{SIGNED_QUERY}&w=999"]


@pytest.fixture
def presigned(s3_endpoint: str) -> Any:
    """``presigned(key)`` → a boto3 presigned GET URL of an object holding the sample image."""
    bucket = f"ci-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        config=BotoConfig(signature_version="s3v4"),
    )
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="private/cat one.jpg", Body=IMAGE)

    def make(key: str, expires: int = 3600) -> str:
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
        return url

    yield make
    client.close()


async def test_presigned_s3_url_plain_form(
    make_client: MakeClient, s3_endpoint: str, presigned: Any
) -> None:
    client = await make_client(tenants_config(s3_endpoint))
    url = presigned("private/cat one.jpg")
    assert "X-Amz-Signature=" in url
    response = await client.get(f"/v7/{url}&w=100&h=100&func=crop", headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (100, 100)


async def test_presigned_s3_url_encoded_form(
    make_client: MakeClient, s3_endpoint: str, presigned: Any
) -> None:
    client = await make_client(tenants_config(s3_endpoint))
    url = quote(presigned("private/cat one.jpg"), safe="")
    response = await client.get(f"/v7/{url}?ci_url_encoded=1&w=100", headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read())[0] == 100


async def test_presigned_url_of_a_missing_key_is_404(
    make_client: MakeClient, s3_endpoint: str, presigned: Any
) -> None:
    client = await make_client(tenants_config(s3_endpoint))
    response = await client.get(f"/v7/{presigned('nope.jpg')}&w=100", headers=MILUV)
    assert response.status == 404


def _as_the_plugin_sends_it(presigned_url: str, own: str) -> str:
    """js-cloudimage-responsive 4.x: the origin's query moves after the plugin's parameters,
    each value passed through decodeURI (reserved escapes such as %2F stay) and then
    encodeURIComponent, so ``%2F`` becomes ``%252F``."""
    base, _, query = presigned_url.partition("?")
    pairs = [pair.partition("=") for pair in query.split("&")]
    encoded = "&".join(
        f"{name}={quote(value, safe=_URI_COMPONENT_SAFE)}" for name, _, value in pairs
    )
    return f"{base}?{own}&{encoded}"


_URI_COMPONENT_SAFE = "-_.!~*'()"


async def test_plugin_double_encoded_query_reaches_the_origin_as_signed(
    make_client: MakeClient, recorder: tuple[str, list[str]]
) -> None:
    base, seen = recorder
    client = await make_client(tenants_config(base))
    original = f"{base}/private/photo.jpg?{SIGNED_QUERY}"
    sent = _as_the_plugin_sends_it(original, "w=120&h=80")
    assert "%252F" in sent
    raw = URL(str(client.make_url("/")).rstrip("/") + f"/v7/{sent}", encoded=True)
    response = await client.session.get(raw, headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (120, 80)
    assert seen == [f"/private/photo.jpg?{SIGNED_QUERY}"]
