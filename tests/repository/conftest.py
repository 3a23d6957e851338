"""Images and configs for the repository tests."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from thumbor_py.config import Config
from thumbor_py.repository.auth import hash_key

UPLOADER = "upload-key-0123456789"
READER = "read-key-0123456789"
ADMIN = "admin-key-0123456789"
RED, BLUE = (220, 20, 20), (20, 20, 220)


def jpeg(size: tuple[int, int] = (400, 300), color: tuple[int, int, int] = RED) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 0, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def color_of(body: bytes) -> str:
    pixel = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))
    assert isinstance(pixel, tuple)
    return "red" if pixel[0] > pixel[2] else "blue"


def keys() -> list[dict[str, Any]]:
    return [
        {"name": "uploader", "sha256": hash_key(UPLOADER), "scopes": ["upload", "read"]},
        {"name": "reader", "sha256": hash_key(READER), "scopes": ["read"], "burst": 3, "rate": 0.5},
        {
            "name": "admin",
            "sha256": hash_key(ADMIN),
            "scopes": ["upload", "read", "delete", "register"],
        },
    ]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def file_config(tmp_path: Path, **repository: Any) -> Config:
    """File loader and file result storage under ``tmp_path``; the repository in between."""
    (tmp_path / "originals").mkdir(exist_ok=True)
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": "file", "settings": {"root": str(tmp_path / "originals")}},
            "result_storage": {
                "use": "file",
                "store_unsafe": True,
                "settings": {"root": str(tmp_path / "results")},
            },
            "imaging": {"detectors": []},
            "coherence": {"check_interval": 0.05},
            "repository": {"enabled": True, "keys": keys(), **repository},
        },
        env={},
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket on moto's S3 server."""
    name = f"repo-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
