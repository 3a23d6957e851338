"""Thumbor parity fixes from issue 15: truncated JPEGs are served, a manual crop on a
max-size-normalised source truncates like Thumbor, and animated GIFs carry no Vary: Accept.

The crop cases are DERIVED (tests/parity/derived.json says how), not recorded from Thumbor.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.test_thumbor_parity import PARITY, _config
from thumbor_py.app import create_app
from thumbor_py.config import Config

DERIVED: dict[str, Any] = json.loads((PARITY / "derived.json").read_text())
CHROME_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
_ISSUE_CONFIGS = {"issue15": (800, 600), "issue15_width_only": (800, 0)}


def _derived_config(entry: dict[str, Any], root: Path) -> Config:
    if entry["config"] not in _ISSUE_CONFIGS:
        return _config(entry["config"])
    max_width, max_height = _ISSUE_CONFIGS[entry["config"]]
    Image.new("RGB", tuple(entry["source"]), (40, 90, 160)).save(root / "big.jpg", quality=90)
    data = {
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": str(root)}},
        "imaging": {"detectors": [], "max_width": max_width, "max_height": max_height},
    }
    return Config.from_mapping(data, env={})


@pytest.mark.parametrize(
    "entry", [pytest.param(e, id=f"{e['config']}:{e['url']}") for e in DERIVED["entries"]]
)
async def test_derived_thumbor_answers(
    entry: dict[str, Any], aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(_derived_config(entry, tmp_path)))
    response = await client.get(entry["url"])
    assert response.status == 200
    image = Image.open(io.BytesIO(await response.read()))
    assert image.size == (entry["width"], entry["height"]), entry["note"]


def _jpeg(progressive: bool) -> bytes:
    buffer = io.BytesIO()
    gradient = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    gradient.save(buffer, "JPEG", quality=85, progressive=progressive)
    return buffer.getvalue()


def _client_config(root: Path, **imaging: Any) -> Config:
    data = {
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": str(root)}},
        "imaging": {"master_cache_bytes": 0, **imaging},
    }
    return Config.from_mapping(data, env={})


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
async def test_truncated_jpeg_is_served_and_logged(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, progressive: bool
) -> None:
    data = _jpeg(progressive)
    (tmp_path / "broken upload.jpg").write_bytes(data[: len(data) * 2 // 3])
    client = await aiohttp_client(create_app(_client_config(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="thumbor_py.imaging.formats"):
        response = await client.get("/unsafe/160x120/broken%20upload.jpg")
        body = await response.read()
    assert response.status == 200, body
    image = Image.open(io.BytesIO(body)).convert("L")
    assert image.size == (160, 120)
    top = image.getpixel((80, 5))
    assert isinstance(top, int)
    assert top < 60  # the top rows came from the file (dark end)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("truncated JPEG broken%20upload.jpg" in m for m in warnings), warnings


@pytest.mark.parametrize("keep", ["headers", "scan-start"])
async def test_truncated_jpeg_without_any_row_is_still_400(
    aiohttp_client: Any, tmp_path: Path, keep: str
) -> None:
    data = _jpeg(False)
    start_of_scan = data.index(b"\xff\xda")
    cut = start_of_scan - 4 if keep == "headers" else start_of_scan + 14
    (tmp_path / "empty.jpg").write_bytes(data[:cut])
    client = await aiohttp_client(create_app(_client_config(tmp_path)))
    response = await client.get("/unsafe/100x100/empty.jpg")
    assert response.status == 400


async def test_truncation_leaves_the_process_wide_flag_alone(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    from PIL import ImageFile

    data = _jpeg(False)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    client = await aiohttp_client(create_app(_client_config(tmp_path)))
    assert (await client.get("/unsafe/100x100/cut.jpg")).status == 200
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("image", "imaging", "vary"),
    [
        pytest.param("anim.gif", {"auto_webp": True, "auto_avif": True}, None, id="anim"),
        pytest.param(
            "anim.gif",
            {"auto_webp": True, "auto_convert_animated": True},
            "Accept",
            id="anim-converted",
        ),
        pytest.param("single.gif", {"auto_webp": True}, "Accept", id="still-gif"),
    ],
)
async def test_vary_accept_only_when_the_answer_can_change(
    aiohttp_client: Any, image: str, imaging: dict[str, Any], vary: str | None
) -> None:
    client = await aiohttp_client(create_app(_client_config(PARITY / "images", **imaging)))
    for accept in (CHROME_ACCEPT, "image/png,*/*"):
        response = await client.get(f"/unsafe/40x30/{image}", headers={"Accept": accept})
        assert response.status == 200
        assert response.headers.get("Vary") == vary
