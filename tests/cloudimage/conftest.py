"""Fixtures for the Cloudimage dialect: the local HTTP origin and a multi-tenant app."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from tests.loaders.http_origin import serving_origin
from thumbor_py.app import create_app
from thumbor_py.config import Config

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
KEY = "thumbor-key"
SALT = "salt"
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def size_of(body: bytes) -> tuple[int, int]:
    """Width and height of an encoded image."""
    with Image.open(io.BytesIO(body)) as image:
        return image.size


def tenants_config(origin: str, **site: Any) -> dict[str, Any]:
    """Two tenants (miluv, lovia) over the local origin; ``site`` overrides miluv's settings."""
    http = {"use": "http", "settings": {"allowed_networks": ["127.0.0.0/8"]}}
    miluv = {
        "name": "miluv",
        "hosts": ["media.miluv.app", "media-app.miluv.app"],
        "origin_prefix": f"{origin}/",
        "aliases": {"_files_": "", "_web_": f"{origin}/"},
        "allowed_origins": ["127.0.0.1"],
        **site,
    }
    return {
        "security": {"key": KEY},
        "imaging": {"max_source_bytes": 2_000_000},
        "loader": {"use": "file", "settings": {"root": str(SAMPLES)}},
        "routes": [{"prefix": "http://", "loader": http}, {"prefix": "https://", "loader": http}],
        "tenants": {
            "default": None,
            "presets": {"thumb": "w=120&h=80&func=crop"},
            "sites": [
                miluv,
                {"name": "lovia", "hosts": ["media.lovia.life"], "dialects": ["thumbor"]},
            ],
        },
    }


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    """Base URL of the local HTTP origin on 127.0.0.1 (``/image.jpg`` is chelsea, 451x300)."""
    async with serving_origin() as base:
        yield base


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    """``await make_client(mapping)`` → a test client of ``create_app`` for that config."""

    async def make(mapping: dict[str, Any]) -> Client:
        client: Client = await aiohttp_client(create_app(Config.from_mapping(mapping, env={})))
        return client

    return make
