"""Tenants by Host: resolution, per-tenant Thumbor keys, default tenant, namespaces in the
result key, default routes, auto formats and configuration errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.cloudimage.conftest import KEY, MakeClient, size_of, tenants_config
from thumbor_py.app import PIPELINE_KEY
from thumbor_py.config import Config, load_config
from thumbor_py.errors import ConfigError
from thumbor_py.signing import signed_path
from thumbor_py.tenants import build_directory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tenants.yaml"
PARITY_IMAGES = Path(__file__).resolve().parents[1] / "parity" / "images"
HOSTS = (
    "media.miluv.app",
    "media-app.miluv.app",
    "media.lovia.life",
    "media-about.lovia.life",
    "media.soluvas.com",
)


def test_example_serves_the_five_hostnames_of_three_brands() -> None:
    config = load_config(EXAMPLE, env={})
    directory = build_directory(config)
    assert directory is not None
    brands = {host: directory.resolve(host) for host in HOSTS}
    assert all(brands.values())
    assert len({tenant.name for tenant in brands.values() if tenant}) == 3
    assert directory.resolve("other.example") is None


@pytest.mark.parametrize(
    ("host", "name"),
    [
        pytest.param("media.miluv.app", "miluv", id="exact"),
        pytest.param("MEDIA-APP.miluv.app:443", "miluv", id="case-and-port"),
        pytest.param("media.miluv.app.", "miluv", id="trailing-dot"),
        pytest.param("media.lovia.life", "lovia", id="other"),
        pytest.param("unknown.example", None, id="unknown"),
        pytest.param(None, None, id="no-host"),
    ],
)
def test_resolve(host: str | None, name: str | None) -> None:
    config = Config.from_mapping(tenants_config("http://127.0.0.1:1"), env={})
    directory = build_directory(config)
    assert directory is not None
    tenant = directory.resolve(host)
    assert (tenant.name if tenant else None) == name


def test_no_tenants_no_directory() -> None:
    assert build_directory(Config.from_mapping({"security": {"key": "k"}}, env={})) is None


def _broken(
    change: dict[str, Any], top: dict[str, Any] | None = None, origin: str = "http://127.0.0.1:1"
) -> dict[str, Any]:
    mapping = copy.deepcopy(tenants_config(origin))
    mapping["tenants"]["sites"][0].update(change)
    mapping["tenants"].update(top or {})
    return mapping


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        pytest.param(_broken({"name": "lovia"}), "is used twice", id="duplicate-name"),
        pytest.param(_broken({"hosts": ["media.lovia.life"]}), "two tenants", id="dup-host"),
        pytest.param(_broken({}, {"default": "nobody"}), "no tenant is named", id="default"),
        pytest.param(_broken({"security": "seal"}), "needs a salt", id="salt"),
        pytest.param(_broken({"aliases": {"media": "s3://x/"}}), "_name_", id="alias-form"),
        pytest.param(_broken({"dialects": []}), "at least one", id="no-dialect"),
        pytest.param(_broken({"signature_length": 41}), "between 6 and 40", id="sig-length"),
        pytest.param(_broken({"allowed_origins": ["^("]}), "bad regex", id="regex"),
        pytest.param(_broken({"presets": {"x": 1}}), "expected a string", id="preset-type"),
        pytest.param(_broken({"allowed_widths": [0]}), "greater than 0", id="widths"),
        pytest.param(_broken({"max_dpr": 0.5}), "1 or more", id="max-dpr"),
    ],
)
def test_configuration_errors_name_the_key(mapping: dict[str, Any], message: str) -> None:
    config = Config.from_mapping(mapping, env={})
    with pytest.raises(ConfigError, match=message):
        build_directory(config)


def test_tenant_key_replaces_the_global_key() -> None:
    mapping = _broken({"key": "miluv-key"})
    mapping["security"] = {"allow_unsafe": False}  # no global key: each tenant has its own
    mapping["tenants"]["sites"][1]["key"] = "lovia-key"
    directory = build_directory(Config.from_mapping(mapping, env={}))
    assert directory is not None
    miluv = directory.resolve("media.miluv.app")
    assert miluv is not None
    assert miluv.signing_keys == ("miluv-key",)


async def test_thumbor_urls_are_signed_with_each_tenants_key(
    make_client: MakeClient, origin: str
) -> None:
    client = await make_client(_broken({"key": "miluv-key", "default_route": ""}))
    miluv_path = signed_path("miluv-key", "60x40/chelsea.jpg")
    global_path = signed_path(KEY, "60x40/chelsea.jpg")
    response = await client.get(miluv_path, headers={"Host": "media.miluv.app"})
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (60, 40)
    response = await client.get(global_path, headers={"Host": "media.miluv.app"})
    assert response.status == 400
    # lovia has no key of its own: the global security.key signs for it.
    response = await client.get(global_path, headers={"Host": "media.lovia.life"})
    assert response.status == 200
    response = await client.get(miluv_path, headers={"Host": "media.lovia.life"})
    assert response.status == 400


async def test_default_route_prefixes_thumbor_images(make_client: MakeClient, origin: str) -> None:
    client = await make_client(_broken({"default_route": f"{origin}/"}))
    response = await client.get(
        signed_path(KEY, "50x0/image.jpg"), headers={"Host": "media.miluv.app"}
    )
    assert response.status == 200, await response.text()
    assert size_of(await response.read())[0] == 50


async def test_unknown_host_goes_to_the_default_tenant(
    make_client: MakeClient, origin: str
) -> None:
    client = await make_client(_broken({}, {"default": "miluv"}, origin))
    response = await client.get("/v7/image.jpg?w=30", headers={"Host": "cdn-origin.internal"})
    assert response.status == 200, await response.text()


async def test_cloudimage_without_v7(make_client: MakeClient, origin: str) -> None:
    client = await make_client(_broken({"cloudimage_without_v7": True}, origin=origin))
    headers = {"Host": "media.miluv.app"}
    response = await client.get("/image.jpg?w=70", headers=headers)
    assert response.status == 200, await response.text()
    assert size_of(await response.read())[0] == 70
    # Thumbor URLs still work on that host.
    response = await client.get(signed_path(KEY, f"40x0/{origin}/image.jpg"), headers=headers)
    assert response.status == 200, await response.text()
    assert size_of(await response.read())[0] == 40


async def test_namespaces_keep_tenants_results_apart(
    make_client: MakeClient, origin: str, tmp_path: Path
) -> None:
    mapping = _broken({"namespace": "miluv-ns"}, origin=origin)
    mapping["tenants"]["sites"][1].update(
        {"dialects": ["thumbor", "cloudimage"], "origin_prefix": f"{origin}/"}
    )
    mapping["result_storage"] = {"use": "file", "settings": {"root": str(tmp_path)}}
    client = await make_client(mapping)
    hits = []
    for host in ("media.miluv.app", "media.lovia.life", "media.miluv.app", "media.lovia.life"):
        response = await client.get("/v7/image.jpg?w=20", headers={"Host": host})
        assert response.status == 200
        hits.append(response.headers.get("X-Result-Storage"))
        await client.app[PIPELINE_KEY].drain(5)  # the stored copy is written
    # Same URL, two tenants: each tenant's first request renders; its second one is a hit.
    assert hits == [None, None, "hit", "hit"]


async def test_tenant_auto_webp(make_client: MakeClient, origin: str) -> None:
    client = await make_client(_broken({"auto_webp": True}, origin=origin))
    headers = {"Host": "media.miluv.app", "Accept": "image/webp,*/*"}
    response = await client.get("/v7/image.jpg?w=20", headers=headers)
    assert response.headers["Content-Type"] == "image/webp"
    assert "Accept" in response.headers["Vary"]
    response = await client.get(
        "/v7/image.jpg?w=20", headers={**headers, "Host": "media.lovia.life"}
    )
    assert response.status == 400  # lovia: thumbor only


async def test_equivalent_cloudimage_urls_share_one_result(
    make_client: MakeClient, origin: str, tmp_path: Path
) -> None:
    mapping = _broken({}, origin=origin)
    mapping["result_storage"] = {"use": "file", "settings": {"root": str(tmp_path)}}
    client = await make_client(mapping)
    headers = {"Host": "media.miluv.app"}
    first = await client.get("/v7/image.jpg?w=40&h=30&func=crop", headers=headers)
    assert first.status == 200
    await client.app[PIPELINE_KEY].drain(5)
    second = await client.get("/v7/image.jpg?height=30&width=40&zz=1", headers={**headers})
    assert second.status == 200
    assert second.headers.get("X-Result-Storage") is None  # zz=1 went to the origin query
    third = await client.get("/v7/image.jpg?height=30&width=40", headers=headers)
    assert third.headers.get("X-Result-Storage") == "hit"


async def test_allow_unsafe_per_tenant(make_client: MakeClient, origin: str) -> None:
    client = await make_client(_broken({"allow_unsafe": True, "default_route": ""}, origin=origin))
    response = await client.get("/unsafe/30x0/chelsea.jpg", headers={"Host": "media.miluv.app"})
    assert response.status == 200, await response.text()
    response = await client.get("/unsafe/30x0/chelsea.jpg", headers={"Host": "media.lovia.life"})
    assert response.status == 400
    assert await response.text() == "unsafe URLs are not allowed by this server"


async def test_animated_answers_do_not_vary_on_accept_in_either_dialect(
    make_client: MakeClient,
) -> None:
    # Both dialects answer through one response path: an animation no format class converts
    # is the same whatever Accept says, so no Vary (as on a server without tenants).
    mapping = tenants_config("http://127.0.0.1:1", auto_webp=True)
    mapping["loader"] = {"use": "file", "settings": {"root": str(PARITY_IMAGES)}}
    client = await make_client(mapping)
    headers = {"Host": "media.miluv.app", "Accept": "image/webp,*/*"}
    for path in (signed_path(KEY, "40x30/anim.gif"), "/v7/_files_/anim.gif?w=40&h=30"):
        response = await client.get(path, headers=headers)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "image/gif"
        assert "Vary" not in response.headers
