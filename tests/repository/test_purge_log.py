"""The purge log beside the repository's originals: its contract on moto, what ``auto``
picks, and two replicas sharing only the bucket: a PUT on one is never served stale by the
other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.repository.conftest import ADMIN, BLUE, auth, color_of, file_config, jpeg, keys
from thumbor_py.app import create_app
from thumbor_py.assembly import build_purge_log
from thumbor_py.coherence import MemoryPurgeLog, PurgeRecord
from thumbor_py.config import Config
from thumbor_py.purge_logs import FilePurgeLog
from thumbor_py.repository.purge_log import S3PurgeLog
from thumbor_py.s3client import S3Settings


async def test_s3_purge_log_merges(s3_endpoint: str, bucket: str) -> None:
    log = S3PurgeLog(S3Settings(bucket=bucket, prefix="media/", endpoint_url=s3_endpoint))
    await log.start()
    try:
        assert await log.read("s3://b/a.jpg") == PurgeRecord()
        await log.write("s3://b/a.jpg", purged_at=10.0)
        await log.write("s3://b/a.jpg", purged_at=5.0, version="v2")  # times only grow
        assert await log.read("s3://b/a.jpg") == PurgeRecord(10.0, "v2")
        await log.write("s3://b/a.jpg", version="v3")
        assert await log.read("s3://b/a.jpg") == PurgeRecord(10.0, "v3")
        assert await log.read("s3://b/other.jpg") == PurgeRecord()
    finally:
        await log.aclose()


def s3_config(endpoint: str, bucket: str, **coherence: Any) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {
                "use": "s3",
                "settings": {"bucket": bucket, "prefix": "media/", "endpoint_url": endpoint},
            },
            "imaging": {"detectors": [], "revalidate_after": None},
            "coherence": {"check_interval": 0.05, **coherence},
            "repository": {"enabled": True, "allow_put": True, "keys": keys()},
        },
        env={},
    )


def test_auto_keeps_the_log_beside_the_originals(
    tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    assert isinstance(build_purge_log(s3_config(s3_endpoint, bucket)), S3PurgeLog)
    local = s3_config(s3_endpoint, bucket, purge_log="local")
    assert isinstance(build_purge_log(local), MemoryPurgeLog)
    files = file_config(tmp_path)  # a file result storage: its own folder, as before
    assert isinstance(build_purge_log(files), FilePurgeLog)
    data = {
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": str(tmp_path)}},
        "repository": {"enabled": True, "require_key": False},
    }
    log = build_purge_log(Config.from_mapping(data, env={}))
    assert isinstance(log, FilePurgeLog)


async def test_two_replicas_sharing_only_the_bucket_never_serve_a_replaced_original(
    aiohttp_client: Any, s3_endpoint: str, bucket: str
) -> None:
    """No result storage, no MongoDB, revalidation off: only the purge log in the bucket
    tells replica B that replica A replaced the original."""
    a = await aiohttp_client(create_app(s3_config(s3_endpoint, bucket)))
    b = await aiohttp_client(create_app(s3_config(s3_endpoint, bucket)))
    posted = await a.post("/image", data=jpeg(), headers=auth(ADMIN))
    image_id = posted.headers["Location"].removeprefix("/image/")
    paths = [f"/unsafe/{w}x0/originals/{image_id}" for w in (100, 120)]
    for client in (a, b):
        for path in paths:  # each replica now holds the decoded original
            assert color_of(await (await client.get(path)).read()) == "red"
    put = await a.put(f"/image/{image_id}", data=jpeg(color=BLUE), headers=auth(ADMIN))
    assert put.status == 204
    for client in (b, a):
        for path in [*paths, f"/unsafe/90x0/originals/{image_id}"]:
            assert color_of(await (await client.get(path)).read()) == "blue", path
