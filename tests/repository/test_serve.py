"""As deployed: `thumbor-py serve` with two workers, originals on moto's S3 server, no result
storage and no MongoDB. The upload API and the direct-upload flow work, and a replaced
original is never served stale by either worker (the purge log lives in the bucket)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
import yaml
from PIL import Image

from tests.repository.conftest import ADMIN, BLUE, auth, jpeg, keys
from tests.test_replicas import serving


async def colour(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        body = await response.read()
        assert response.status == 200, body[:200]
    pixel = Image.open(io.BytesIO(body)).convert("RGB").getpixel((5, 5))
    assert isinstance(pixel, tuple)
    return "red" if pixel[0] > pixel[2] else "blue"


async def test_serve_with_two_workers_upload_replace_and_direct(
    tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    config = {
        "security": {"allow_unsafe": True},
        "server": {"workers": 2, "request_timeout": 20},
        "loader": {
            "use": "s3",
            "settings": {"bucket": bucket, "prefix": "media/", "endpoint_url": s3_endpoint},
        },
        "imaging": {"detectors": [], "revalidate_after": None},
        "coherence": {"check_interval": 0.1},
        "repository": {"enabled": True, "allow_put": True, "allow_delete": True, "keys": keys()},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    admin = auth(ADMIN)
    with serving(path) as server:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server}/image", data=jpeg(), headers=admin) as posted:
                assert posted.status == 201, await posted.text()
                image_id = posted.headers["Location"].removeprefix("/image/")
            urls = [f"{server}/unsafe/{w}x0/originals/{image_id}" for w in range(100, 116)]
            found = await asyncio.gather(*(colour(session, url) for url in urls))
            assert found == ["red"] * len(urls)  # both workers hold the decoded original
            async with session.put(
                f"{server}/image/{image_id}", data=jpeg(color=BLUE), headers=admin
            ) as put:
                assert put.status == 204
            again = [*urls, f"{server}/unsafe/90x0/originals/{image_id}"]
            found = await asyncio.gather(*(colour(session, url) for url in again))
            assert found == ["blue"] * len(again)
            # Direct upload, records in the bucket (no MongoDB).
            async with session.post(
                f"{server}/uploads", json={"content_type": "image/jpeg"}, headers=admin
            ) as answered:
                permission = await answered.json()
            form = aiohttp.FormData()
            for name, value in permission["fields"].items():
                form.add_field(name, value)
            form.add_field("file", jpeg((300, 200)), filename="x.jpg", content_type="image/jpeg")
            async with session.post(permission["url"], data=form) as sent:
                assert sent.status in (200, 201, 204)
            body = {"upload_id": permission["upload_id"], "owner": "ana"}
            async with session.post(f"{server}/images", json=body, headers=admin) as registered:
                assert registered.status == 201, await registered.text()
                record = await registered.json()
            async with session.get(f"{server}{record['urls']['smart']}") as smart:
                assert smart.status == 200
            async with session.get(f"{server}/images?owner=ana", headers=admin) as listed:
                assert [i["id"] for i in (await listed.json())["items"]] == [record["id"]]
