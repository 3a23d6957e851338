"""End to end: ``/v7/`` URLs on a tenant's host, through create_app, the HTTP loader and the
render path the Thumbor dialect uses."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.cloudimage.conftest import MakeClient, size_of, tenants_config

MILUV = {"Host": "media.miluv.app"}


@pytest.mark.parametrize(
    ("query", "size"),
    [
        pytest.param("w=200&h=100", (200, 100), id="crop-default"),
        pytest.param("w=200&h=100&func=crop", (200, 100), id="crop"),
        pytest.param("w=200&h=100&func=fit", (200, 100), id="fit-pads"),
        pytest.param("w=200&h=200&func=bound", (200, 133), id="bound"),
        pytest.param("w=200&h=200&func=boundmin", (301, 200), id="boundmin"),
        pytest.param("w=200&h=100&func=cover", (200, 100), id="cover"),
        pytest.param("w=150", (150, 100), id="width-only"),
        pytest.param("height=100", (150, 100), id="height-only"),
        pytest.param("w=100&dpr=2", (200, 133), id="dpr"),
        pytest.param("w=900&h=600&org_if_sml=1", (451, 300), id="org-if-sml"),
        pytest.param("w=900&h=600&func=fit", (900, 600), id="fit-no-enlarge-padded"),
        pytest.param("w=100&h=100&r=90", (100, 100), id="rotate"),
        pytest.param("tl_px=0,0&br_px=200,100", (200, 100), id="positionable-crop"),
        pytest.param("w=100&unknown=1", (100, 67), id="unknown-ignored"),
        pytest.param("w=902", (902, 600), id="width-upscales"),
        pytest.param("w=902&org_if_sml=1", (451, 300), id="org-if-sml-width"),
        pytest.param("w=900&h=900&func=bound", (451, 300), id="bound-no-upscale"),
        pytest.param("w=100&h=100&func=face", (100, 100), id="face"),
        pytest.param("w=100&h=100&gravity=auto", (100, 100), id="auto"),
        pytest.param("w=100&h=100&r=30", (138, 138), id="free-rotation"),
        pytest.param("w=100&h=100&radius=20&force_format=png", (100, 100), id="radius"),
        pytest.param("w=100&h=100&trim=10", (100, 100), id="trim"),
    ],
)
async def test_absolute_origin_sizes(
    make_client: MakeClient, origin: str, query: str, size: tuple[int, int]
) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get(f"/v7/{origin}/image.jpg?{query}", headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == size


async def test_relative_origin_uses_the_prefix(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get("/v7/image.jpg?w=120&h=80", headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (120, 80)


async def test_alias_maps_to_a_route(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin))
    for path in ("_web_/image.jpg", "_files_/chelsea.jpg"):
        response = await client.get(f"/v7/{path}?w=90", headers=MILUV)
        assert response.status == 200, await response.text()
        assert size_of(await response.read())[0] == 90


async def test_unknown_host_is_misdirected(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get("/v7/image.jpg?w=10", headers={"Host": "evil.example"})
    assert response.status == 421


async def test_origin_outside_allowlist_is_refused(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, allowed_origins=["*.miluv.app"]))
    response = await client.get(f"/v7/{origin}/image.jpg?w=10", headers=MILUV)
    assert response.status == 400
    assert await response.text() == "origin is not in this host's allowed_origins"


async def test_cloudimage_disabled_on_a_thumbor_only_tenant(
    make_client: MakeClient, origin: str
) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get(
        f"/v7/{origin}/image.jpg?w=10", headers={"Host": "media.lovia.life"}
    )
    assert response.status == 400


@pytest.mark.parametrize(
    ("query", "content_type"),
    [
        pytest.param("w=50&force_format=png", "image/png", id="png"),
        pytest.param("w=50&force_format=webp", "image/webp", id="webp"),
        pytest.param("w=50&force_format=bogus,jpeg", "image/jpeg", id="first-known"),
    ],
)
async def test_force_format(
    make_client: MakeClient, origin: str, query: str, content_type: str
) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get(f"/v7/image.jpg?{query}", headers=MILUV)
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type


async def test_radius_corners_are_transparent(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin))
    response = await client.get(
        "/v7/image.jpg?w=100&h=100&radius=30&force_format=png", headers=MILUV
    )
    image = Image.open(io.BytesIO(await response.read())).convert("RGBA")
    corner, centre = image.getpixel((0, 0)), image.getpixel((50, 50))
    assert isinstance(corner, tuple)
    assert isinstance(centre, tuple)
    assert corner[3] == 0
    assert centre[3] == 255


async def test_many_sizes_of_one_source_in_one_app(make_client: MakeClient, origin: str) -> None:
    """Later renders come from the decoded master: the dialect's filters see the source size."""
    client = await make_client(tenants_config(origin))
    cases = [
        ("w=400", (400, 266)),
        ("w=600&h=400&func=cropfit", (600, 400)),
        ("w=200&h=100&func=cropfit", (200, 100)),
        ("w=900&h=600&org_if_sml=1", (451, 300)),
        ("w=100&h=300&gravity=90p,50p", (100, 300)),
        ("w=300&h=300&func=fit", (300, 300)),
    ]
    for query, size in cases:
        response = await client.get(f"/v7/image.jpg?{query}", headers=MILUV)
        assert response.status == 200, query
        assert size_of(await response.read()) == size, query
