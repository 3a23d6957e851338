"""Thumbor's upload API through the app, with the file original storage the file loader reads:
statuses, Location, the original back, Thumbor URLs of a new id, and purge on replace/delete."""

from __future__ import annotations

import asyncio
import io
import re
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.repository.conftest import (
    ADMIN,
    BLUE,
    READER,
    UPLOADER,
    auth,
    color_of,
    file_config,
    jpeg,
    png,
)
from thumbor_py.app import create_app

LOCATION = re.compile(r"/image/[0-9a-f]{32}/photo\.jpg")


async def upload(client: Any, body: bytes, key: str = UPLOADER, slug: str = "photo.jpg") -> Any:
    return await client.post("/image", data=body, headers={**auth(key), "Slug": slug})


async def test_post_answers_201_with_the_location_and_the_original_reads_back(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    body = jpeg()
    response = await upload(client, body)
    assert response.status == 201, await response.text()
    location = response.headers["Location"]
    assert LOCATION.fullmatch(location)
    got = await client.get(location, headers=auth(UPLOADER))
    assert got.status == 200
    assert got.headers["Content-Type"] == "image/jpeg"
    assert await got.read() == body
    head = await client.head(location, headers=auth(READER))
    assert head.status == 200
    assert head.headers["Content-Type"] == "image/jpeg"
    # Where the loader reads: the id works at once in a Thumbor URL.
    assert (tmp_path / "originals" / "originals" / location.removeprefix("/image/")).exists()
    rendered = await client.get(f"/unsafe/100x75/originals/{location.removeprefix('/image/')}")
    assert rendered.status == 200
    assert Image.open(io.BytesIO(await rendered.read())).size == (100, 75)


async def test_slug_is_cleaned_and_optional(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    response = await upload(client, png(), slug="../../etc/pass wd.png")
    assert response.status == 201
    assert re.fullmatch(r"/image/[0-9a-f]{32}/etc-pass-wd\.png", response.headers["Location"])
    response = await client.post("/image", data=png(), headers=auth(UPLOADER))
    assert re.fullmatch(r"/image/[0-9a-f]{32}", response.headers["Location"])


def _bomb() -> bytes:
    """A valid PNG header claiming 30000x30000 pixels: refused before any decoding."""
    header = b"\x89PNG\r\n\x1a\n"
    ihdr = (30000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    end = b"\x00\x00\x00\x00IEND" + zlib.crc32(b"IEND").to_bytes(4, "big")
    return (
        header + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + end
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"<html><script>alert(1)</script></html>", 415, id="html"),
        pytest.param(b"", 415, id="empty"),
        pytest.param(b"GIF89a" + b"\x00" * 20, 415, id="broken-gif"),
        pytest.param(jpeg()[:200], 415, id="truncated-header"),
        pytest.param(_bomb(), 412, id="pixel-bomb"),
        pytest.param(jpeg((8, 8)), 412, id="under-minimum"),
        pytest.param(b"\xff" * 300_001, 412, id="over-size"),
    ],
)
async def test_hostile_bodies_get_thumbor_statuses(
    aiohttp_client: Any, tmp_path: Path, body: bytes, status: int
) -> None:
    config = file_config(tmp_path, max_bytes=300_000, min_width=16, min_height=16)
    client = await aiohttp_client(create_app(config))
    response = await upload(client, body)
    assert response.status == status, await response.text()
    assert "Traceback" not in await response.text()
    assert not list((tmp_path / "originals").rglob("*.jpg"))


async def test_unknown_ids_are_404(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path, allow_delete=True)))
    for path in ("/image/" + "0" * 32, "/image/nothex", "/image/" + "a" * 32 + "/..%2Fx"):
        assert (await client.get(path, headers=auth(READER))).status == 404
    assert (await client.delete("/image/" + "0" * 32, headers=auth(ADMIN))).status == 404


async def test_put_and_delete_are_405_unless_enabled(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    location = (await upload(client, jpeg())).headers["Location"]
    put = await client.put(location, data=jpeg(color=BLUE), headers=auth(ADMIN))
    assert put.status == 405
    assert put.headers["Allow"] == "GET,HEAD"
    assert (await client.delete(location, headers=auth(ADMIN))).status == 405
    assert (await client.get("/image", headers=auth(ADMIN))).status == 405


async def test_put_replaces_and_purges_every_stored_variant(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    config = file_config(tmp_path, allow_put=True, allow_delete=True)
    client = await aiohttp_client(create_app(config))
    location = (await upload(client, jpeg())).headers["Location"]
    thumbor = f"/unsafe/100x0/originals/{location.removeprefix('/image/')}"
    assert color_of(await (await client.get(thumbor)).read()) == "red"
    await asyncio.sleep(0.2)  # stored in the result storage
    hit = await client.get(thumbor)
    assert hit.headers.get("X-Result-Storage") == "hit"
    put = await client.put(location, data=jpeg(color=BLUE), headers=auth(UPLOADER))
    assert put.status == 204, await put.text()
    after = await client.get(thumbor)
    assert after.headers.get("X-Result-Storage") is None
    assert color_of(await after.read()) == "blue"
    assert (await client.put(location, data=b"nope", headers=auth(UPLOADER))).status == 415
    unknown = "/image/" + "1" * 32
    assert (await client.put(unknown, data=jpeg(), headers=auth(UPLOADER))).status == 404


async def test_delete_removes_the_original_and_its_variants(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path, allow_delete=True)))
    location = (await upload(client, jpeg())).headers["Location"]
    thumbor = f"/unsafe/100x0/originals/{location.removeprefix('/image/')}"
    assert (await client.get(thumbor)).status == 200
    await asyncio.sleep(0.2)
    assert (await client.delete(location, headers=auth(UPLOADER))).status == 403  # no scope
    assert (await client.delete(location, headers=auth(ADMIN))).status == 204
    assert (await client.get(location, headers=auth(ADMIN))).status == 404
    assert (await client.get(thumbor)).status == 404
    metrics = await (await client.get("/metrics")).text()
    assert 'thumbor_py_repository_total{operation="delete",outcome="deleted"}' in metrics


async def test_without_the_section_there_is_no_upload_api(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    config = file_config(tmp_path, enabled=False)
    client = await aiohttp_client(create_app(config))
    response = await client.post("/image", data=jpeg())
    assert response.status in (400, 405)  # the image route: GET only


async def test_direct_uploads_need_s3_and_records_and_the_page_is_opt_in(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    permission = await client.post(
        "/uploads", json={"content_type": "image/jpeg"}, headers=auth(UPLOADER)
    )
    assert permission.status == 409
    assert "no image records" in await permission.text()
    assert (await client.get("/images", headers=auth(READER))).status == 409
    bad = {**auth(UPLOADER), "Content-Type": "application/json"}
    assert (await client.post("/uploads", data=b"{", headers=bad)).status == 400
    assert (await client.post("/uploads", data=b"[1]", headers=bad)).status == 400
    assert (await client.post("/uploads", data=b" " * 70_000, headers=bad)).status == 412
    assert (await client.get("/upload")).status == 400  # no page: an image URL, not signed
    with_page = await aiohttp_client(create_app(file_config(tmp_path, upload_page=True)))
    page = await with_page.get("/upload")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


async def test_multipart_media_field_as_thumbor_accepts_it(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path, max_bytes=300_000)))
    form = aiohttp.FormData()
    form.add_field("media", jpeg(), filename="from form.jpg", content_type="image/jpeg")
    response = await client.post("/image", data=form, headers=auth(UPLOADER))
    assert response.status == 201, await response.text()
    assert response.headers["Location"].endswith("/from-form.jpg")
    other = aiohttp.FormData()
    other.add_field("file", jpeg(), filename="x.jpg")
    assert (await client.post("/image", data=other, headers=auth(UPLOADER))).status == 415
    big = aiohttp.FormData()
    big.add_field("media", b"\xff" * 300_001, filename="big.jpg")
    assert (await client.post("/image", data=big, headers=auth(UPLOADER))).status == 412


async def test_a_polyglot_is_stored_and_served_as_the_image_it_decodes_as(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    body = jpeg() + b"<html><script>alert(document.cookie)</script></html>"
    response = await client.post(
        "/image", data=body, headers={**auth(UPLOADER), "Content-Type": "text/html"}
    )
    assert response.status == 201
    served = await client.get(response.headers["Location"], headers=auth(UPLOADER))
    assert served.headers["Content-Type"] == "image/jpeg"  # what it decodes as, not what it said
    assert served.headers["X-Content-Type-Options"] == "nosniff"
