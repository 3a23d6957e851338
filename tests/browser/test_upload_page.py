"""The operators' upload page in Debian's Chromium: pick a file, upload it straight to the
bucket (moto's S3 server) through the presigned POST, register it, preview it by presets.

thumbor-py runs in this test's event loop (its records are the in-memory double of MongoDB,
which a separate process could not share); the browser is driven by drive_upload.mjs.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from pathlib import Path
from typing import Any

import boto3
from aiohttp import web
from PIL import Image

from tests.browser import install
from tests.conftest import free_port
from tests.repository.conftest import ADMIN, keys
from tests.repository.records_collection import RecordsCollection
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.repository.records import RecordStore

HERE = Path(__file__).resolve().parent
PRESETS = {"card": (320, 180), "thumb": (96, 96)}


def page_config(endpoint: str, bucket: str) -> Config:
    return Config.from_mapping(
        {
            "loader": {
                "use": "s3",
                "settings": {"bucket": bucket, "prefix": "media/", "endpoint_url": endpoint},
            },
            "imaging": {"detectors": []},
            "tenants": {
                "presets": {"card": "w=320&h=180&func=crop", "thumb": "w=96&h=96&func=crop"},
                "sites": [
                    {
                        "name": "operators",
                        "hosts": ["127.0.0.1"],
                        "key": "page-signing-key",
                        "repository": {"enabled": True, "upload_page": True, "keys": keys()},
                    }
                ],
            },
        },
        env={},
    )


async def test_upload_page_in_chromium(
    browser_tools: install.BrowserTools, s3_endpoint: str, tmp_path: Path
) -> None:
    bucket = f"page-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    await asyncio.to_thread(s3.create_bucket, Bucket=bucket)
    picture = tmp_path / "picture.png"
    Image.new("RGB", (900, 600), (30, 140, 90)).save(picture)
    records = RecordsCollection()
    app = create_app(page_config(s3_endpoint, bucket), repository_records=RecordStore(records))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    spec = {
        "chromium": str(browser_tools.chromium),
        "url": f"http://127.0.0.1:{port}/upload",
        "key": ADMIN,
        "file": str(picture),
        "profile": str(tmp_path / "profile"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    try:
        process = await asyncio.create_subprocess_exec(
            str(browser_tools.node),
            str(HERE / "drive_upload.mjs"),
            str(tmp_path / "spec.json"),
            cwd=HERE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await runner.cleanup()
    assert process.returncode == 0, f"drive_upload.mjs failed:\n{err.decode()[-4000:]}"
    report: dict[str, Any] = json.loads(out)
    assert report["pageStatus"] == 200
    assert report["status"][0] == "done", report
    assert not report["pageErrors"], report["pageErrors"]
    # The bytes went to the bucket, not through the server.
    posts = [r for r in report["requests"] if r["method"] == "POST"]
    urls = [r["url"] for r in posts]
    assert urls[0] == f"http://127.0.0.1:{port}/uploads", posts
    assert urls[1].startswith(s3_endpoint), posts
    assert urls[2] == f"http://127.0.0.1:{port}/images", posts
    record = report["record"]
    assert (record["width"], record["height"], record["title"]) == (900, 600, "From the browser")
    sizes = {p["preset"]: (p["width"], p["height"]) for p in report["previews"]}
    assert sizes == {**PRESETS, "smart": (640, 640)}
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    keys_now = [o["Key"] for o in listed if "/.registered/" not in o["Key"]]
    assert keys_now == [f"media/{record['key']}"]  # registered; the temporary object is gone
    stored = s3.get_object(Bucket=bucket, Key=keys_now[0])["Body"].read()
    assert Image.open(io.BytesIO(stored)).size == (900, 600)
