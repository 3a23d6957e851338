"""API keys: hashed, constant-time matched, scoped, rate-limited, never logged; per tenant."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.repository.conftest import ADMIN, READER, UPLOADER, auth, file_config, jpeg, keys
from thumbor_py.app import create_app
from thumbor_py.config import ApiKeyConfig, Config
from thumbor_py.errors import ConfigError, ForbiddenError, RateLimitedError, UnauthorizedError
from thumbor_py.repository.auth import KeyRing, TokenBucket, build_keys, hash_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ring(clock: Clock, *, required: bool = True) -> KeyRing:
    configs = [ApiKeyConfig(**k) for k in keys()]
    return KeyRing(build_keys(configs, "repository.keys"), required=required, clock=clock)


@pytest.mark.parametrize(
    ("headers", "scope", "error"),
    [
        pytest.param({}, "read", UnauthorizedError, id="missing"),
        pytest.param({"Authorization": "Basic abc"}, "read", UnauthorizedError, id="basic"),
        pytest.param({"Authorization": "Bearer "}, "read", UnauthorizedError, id="empty"),
        pytest.param(auth("wrong-key"), "read", UnauthorizedError, id="unknown"),
        pytest.param(auth(READER + " "), "read", None, id="trailing-space-stripped"),
        pytest.param(auth(READER), "upload", ForbiddenError, id="no-scope"),
        pytest.param({"X-API-Key": UPLOADER}, "upload", None, id="x-api-key"),
        pytest.param(auth(ADMIN), "delete", None, id="admin"),
        pytest.param({"X-API-Key": "\udcff"}, "read", UnauthorizedError, id="not-utf8"),
    ],
)
def test_require(headers: dict[str, str], scope: Any, error: type[Exception] | None) -> None:
    keyring = ring(Clock())
    if error is None:
        assert keyring.require(headers, scope) is not None
    else:
        with pytest.raises(error):
            keyring.require(headers, scope)


def test_without_required_keys_anonymous_calls_pass_but_a_wrong_key_does_not() -> None:
    keyring = ring(Clock(), required=False)
    assert keyring.require({}, "upload") is None
    with pytest.raises(UnauthorizedError):
        keyring.require(auth("wrong"), "upload")


def test_token_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert bucket.take() == 0
    assert bucket.take() == 0
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0
    clock.now += 100  # never more than the burst
    assert [bucket.take() for _ in range(3)][-1] > 0


def test_rate_limit_is_per_key_with_retry_after() -> None:
    clock = Clock()
    keyring = ring(clock)
    for _ in range(3):
        keyring.require(auth(READER), "read")
    with pytest.raises(RateLimitedError) as caught:
        keyring.require(auth(READER), "read")
    assert caught.value.retry_after == 2  # one token at 0.5/s
    keyring.require(auth(UPLOADER), "read")  # another key's bucket
    clock.now += 2
    keyring.require(auth(READER), "read")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param({"name": "a", "sha256": "abc"}, "sha256", id="short-hash"),
        pytest.param({"name": "a", "sha256": "g" * 64}, "sha256", id="not-hex"),
        pytest.param({"name": "a", "sha256": "a" * 64, "rate": 0}, "rate", id="rate"),
    ],
)
def test_bad_keys_are_config_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_keys([ApiKeyConfig(**entry)], "repository.keys")


def test_an_enabled_repository_needs_keys_unless_opted_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"repository\.keys"):
        create_app(file_config(tmp_path, keys=[]))
    create_app(file_config(tmp_path, keys=[], require_key=False))


async def test_through_the_app_statuses_and_keys_never_logged(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    assert (await client.post("/image", data=jpeg())).status == 401
    assert (await client.post("/image", data=jpeg(), headers=auth("nope"))).status == 401
    assert (await client.post("/image", data=jpeg(), headers=auth(READER))).status == 403
    location = (await client.post("/image", data=jpeg(), headers=auth(UPLOADER))).headers[
        "Location"
    ]
    statuses = [(await client.get(location, headers=auth(READER))).status for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    limited = await client.get(location, headers=auth(READER))
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    for key in (UPLOADER, READER, "nope"):
        assert key not in caplog.text


def tenant_config(tmp_path: Path) -> Config:
    root = tmp_path / "originals"
    root.mkdir(exist_ok=True)
    other = [{"name": "other", "sha256": hash_key("other-tenant-key"), "scopes": ["upload"]}]
    return Config.from_mapping(
        {
            "loader": {"use": "file", "settings": {"root": str(root)}},
            "imaging": {"detectors": []},
            "tenants": {
                "sites": [
                    {
                        "name": "miluv",
                        "hosts": ["media.miluv.app"],
                        "allow_unsafe": True,
                        "repository": {"enabled": True, "prefix": "miluv/", "keys": keys()},
                    },
                    {
                        "name": "lovia",
                        "hosts": ["media.lovia.life"],
                        "allow_unsafe": True,
                        "repository": {"enabled": True, "prefix": "lovia/", "keys": other},
                    },
                    {"name": "soluvas", "hosts": ["media.soluvas.com"], "allow_unsafe": True},
                ]
            },
        },
        env={},
    )


async def test_keys_belong_to_one_tenant(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(tenant_config(tmp_path)))
    miluv, lovia = {"Host": "media.miluv.app"}, {"Host": "media.lovia.life"}
    posted = await client.post("/image", data=jpeg(), headers={**auth(UPLOADER), **miluv})
    assert posted.status == 201
    location = posted.headers["Location"]
    # Another tenant's key is unknown here, and this tenant's id is unknown there.
    other = auth("other-tenant-key")
    assert (await client.post("/image", data=jpeg(), headers={**other, **miluv})).status == 401
    assert (
        await client.post("/image", data=jpeg(), headers={**auth(UPLOADER), **lovia})
    ).status == 401
    assert (await client.get(location, headers={**other, **lovia})).status == 403
    # A tenant without a repository has no upload API: its /image paths are image URLs.
    soluvas = {"Host": "media.soluvas.com", **auth(UPLOADER)}
    assert (await client.post("/image", data=jpeg(), headers=soluvas)).status == 405
    assert (await client.get(location, headers=soluvas)).status == 400  # not a Thumbor URL
    image_id = location.removeprefix("/image/")
    assert (await client.get(f"/unsafe/50x0/miluv/{image_id}", headers=miluv)).status == 200
    assert (tmp_path / "originals" / "miluv" / image_id).exists()


def test_two_repositories_may_not_share_a_prefix(tmp_path: Path) -> None:
    config = tenant_config(tmp_path)
    data = {
        "loader": {"use": "file", "settings": {"root": str(tmp_path)}},
        "tenants": {
            "sites": [
                {
                    "name": n,
                    "hosts": [f"{n}.example"],
                    "allow_unsafe": True,
                    "repository": {"enabled": True, "require_key": False},
                }
                for n in ("a", "b")
            ]
        },
    }
    assert config.tenants.sites
    with pytest.raises(ConfigError, match="prefix"):
        create_app(Config.from_mapping(data, env={}))
