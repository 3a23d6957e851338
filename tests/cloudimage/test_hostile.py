"""Hostile Cloudimage URLs: each gets its documented status and a one-line reason, never a
traceback or a 500."""

from __future__ import annotations

import pytest

from tests.cloudimage.conftest import MakeClient, tenants_config

MILUV = {"Host": "media.miluv.app"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/v7/", 400, id="no-origin"),
        pytest.param("/v7/?w=10", 400, id="only-query"),
        pytest.param("/v7/javascript:alert(1)?w=1", 400, id="javascript-scheme"),
        pytest.param("/v7/file:///etc/passwd?w=1", 400, id="file-scheme"),
        pytest.param("/v7/http://169.254.169.254/latest/meta-data?w=1", 400, id="ssrf-metadata"),
        pytest.param("/v7/http://[::1]:22/a.jpg", 400, id="ssrf-ipv6-loopback"),
        pytest.param("/v7/_nope_/a.jpg?w=1", 400, id="unknown-alias"),
        pytest.param("/v7/_files_/../../../etc/passwd?w=1", 400, id="path-escape"),
        pytest.param("/v7/_files_/%2e%2e/%2e%2e/etc/passwd", 400, id="encoded-escape"),
        pytest.param("/v7/_files_/missing.jpg?w=1", 404, id="missing-file"),
        pytest.param("/v7/status/404?w=1", 404, id="upstream-404"),
        pytest.param("/v7/status/503?w=1", 502, id="upstream-5xx"),
        pytest.param("/v7/text?w=1", 400, id="not-an-image"),
        pytest.param("/v7/image.jpg?w=10000&h=10000", 400, id="output-too-large"),
        pytest.param("/v7/image.jpg?w=99999999999&h=1", 200, id="width-overlong-ignored"),
        pytest.param("/v7/image.jpg?dpr=1e308&w=10", 200, id="dpr-junk-ignored"),
        pytest.param("/v7/image.jpg?gravity=%00&func=%ff&w=10&h=10", 200, id="junk-values"),
        pytest.param("/v7/image.jpg?tl_px=9,9&br_px=1,1", 200, id="inverted-crop-ignored"),
        pytest.param("/v7/image.jpg?ci_eqs=%%%&w=10", 200, id="eqs-without-security"),
        pytest.param("/v7/image.jpg?r=99999", 200, id="rotation-clamped"),
        pytest.param("/v7/image.jpg?blur=99999&pix=99999&w=50", 200, id="filter-caps"),
    ],
)
async def test_hostile_urls(make_client: MakeClient, origin: str, path: str, status: int) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get(path, headers=MILUV)
    body = await response.read()
    assert response.status == status, body[:200]
    if status != 200:
        text = body.decode()
        assert "\n" not in text.strip()
        assert "Traceback" not in text


async def test_absolute_origin_without_an_http_route(make_client: MakeClient, origin: str) -> None:
    mapping = tenants_config(origin)
    mapping["routes"] = mapping["routes"][1:]  # https:// only
    client = await make_client(mapping)
    response = await client.get(f"/v7/{origin}/image.jpg?w=10", headers=MILUV)
    assert response.status == 400
    assert await response.text() == "this server has no http(s) route for absolute origins"
    mapping["routes"] = tenants_config(origin)["routes"][:1]  # http:// only
    client = await make_client(mapping)
    response = await client.get(f"/v7/{origin}/image.jpg?w=10", headers=MILUV)
    assert response.status == 200
