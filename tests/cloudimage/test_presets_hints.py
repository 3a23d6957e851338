"""Presets from both dialects (with the presets-only switch) and client hints."""

from __future__ import annotations

import pytest

from tests.cloudimage.conftest import KEY, MakeClient, size_of, tenants_config
from thumbor_py import hints
from thumbor_py.signing import signed_path

MILUV = {"Host": "media.miluv.app"}


async def test_cloudimage_preset(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, presets={"wide": "w=200&h=50"}))
    for query, size in [("p=thumb", (120, 80)), ("p=wide", (200, 50)), ("p=thumb&h=60", (120, 60))]:
        response = await client.get(f"/v7/image.jpg?{query}", headers=MILUV)
        assert response.status == 200, await response.text()
        assert size_of(await response.read()) == size, query
    response = await client.get("/v7/image.jpg?p=nope", headers=MILUV)
    assert response.status == 400
    assert await response.text() == "unknown preset 'nope'"


async def test_thumbor_preset_is_signed_like_any_url(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, default_route=f"{origin}/"))
    path = signed_path(KEY, "filters:preset(thumb):grayscale()/image.jpg")
    response = await client.get(path, headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (120, 80)
    response = await client.get(path.replace("thumb", "thumX"), headers=MILUV)
    assert response.status == 400  # the signature covers the preset name


async def test_only_presets(make_client: MakeClient, origin: str) -> None:
    client = await make_client(
        tenants_config(origin, only_presets=True, default_route=f"{origin}/")
    )
    ok = [
        "/v7/image.jpg?p=thumb",
        signed_path(KEY, "filters:preset(thumb)/image.jpg"),
    ]
    refused = [
        "/v7/image.jpg?w=100",
        "/v7/image.jpg?p=thumb&w=900",
        signed_path(KEY, "300x200/image.jpg"),
        signed_path(KEY, "300x200/filters:preset(thumb)/image.jpg"),
    ]
    for path in ok:
        response = await client.get(path, headers=MILUV)
        assert response.status == 200, path
    for path in refused:
        response = await client.get(path, headers=MILUV)
        assert response.status == 400, path
        assert "presets only" in await response.text()


@pytest.mark.parametrize(
    ("params", "headers", "expected", "vary"),
    [
        pytest.param({"w": "300"}, {"Sec-CH-Width": "999"}, {"w": "300"}, (), id="no-hint-asked"),
        pytest.param(
            {"w": "auto"}, {"Sec-CH-Width": "700"}, {"w": "768"}, hints.WIDTH_HEADERS, id="width"
        ),
        pytest.param(
            {"w": "auto"}, {"Width": "330"}, {"w": "480"}, hints.WIDTH_HEADERS, id="legacy"
        ),
        pytest.param(
            {"w": "auto"},
            {"Sec-CH-Width": "5000"},
            {"w": "1920"},
            hints.WIDTH_HEADERS,
            id="clamped",
        ),
        pytest.param({"w": "auto"}, {}, {"w": "1920"}, hints.WIDTH_HEADERS, id="no-header"),
        pytest.param(
            {"w": "300", "dpr": "auto"},
            {"Sec-CH-DPR": "2"},
            {"w": "640"},
            hints.DPR_HEADERS,
            id="dpr",
        ),
        pytest.param(
            {"w": "300", "h": "100", "dpr": "auto"},
            {"DPR": "9"},
            {"w": "1024", "h": "300"},
            hints.DPR_HEADERS,
            id="dpr-clamped",
        ),
        pytest.param(
            {"w": "auto"}, {"Sec-CH-Width": "abc"}, {"w": "1920"}, hints.WIDTH_HEADERS, id="junk"
        ),
    ],
)
def test_hints_apply(
    params: dict[str, str], headers: dict[str, str], expected: dict[str, str], vary: tuple[str, ...]
) -> None:
    allowed = (320, 480, 640, 768, 1024, 1280, 1920)
    result = hints.apply(params, headers, allowed_widths=allowed, max_dpr=3.0)
    assert dict(result.params) == expected
    assert result.vary == vary


async def test_hinted_response_headers(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, allowed_widths=[100, 200, 400]))
    response = await client.get("/v7/image.jpg?w=auto", headers={**MILUV, "Sec-CH-Width": "150"})
    assert response.status == 200, await response.text()
    assert size_of(await response.read())[0] == 200
    assert response.headers["Accept-CH"] == hints.ACCEPT_CH
    assert "Sec-CH-Width" in response.headers["Vary"]
    plain = await client.get("/v7/image.jpg?w=150", headers=MILUV)
    assert "Accept-CH" not in plain.headers


@pytest.mark.parametrize(
    ("headers", "size"),
    [
        pytest.param({}, (100, 50), id="no-hints"),
        pytest.param({"Sec-CH-Width": "150"}, (200, 100), id="width"),
        pytest.param({"Sec-CH-DPR": "2"}, (200, 100), id="dpr"),
        pytest.param({"DPR": "3.5"}, (400, 200), id="legacy-dpr-rounded-up"),
        pytest.param({"Width": "9000"}, (400, 200), id="clamped"),
    ],
)
async def test_thumbor_hints_filter(
    make_client: MakeClient, origin: str, headers: dict[str, str], size: tuple[int, int]
) -> None:
    settings = {"allowed_widths": [100, 200, 400], "default_route": f"{origin}/"}
    client = await make_client(tenants_config(origin, **settings))
    path = signed_path(KEY, "100x50/filters:hints()/image.jpg")
    response = await client.get(path, headers={**MILUV, **headers})
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == size
    assert response.headers["Accept-CH"] == hints.ACCEPT_CH
    assert "Sec-CH-DPR" in response.headers["Vary"]
