"""Thumbor's upload API keeps one image record per original (moto's S3 server; records in the
MongoDB double, in the bucket, and in a real MongoDB when THUMBOR_PY_TEST_MONGODB_URI is
set): POST writes it, PUT updates it, DELETE drops it, ``/images`` finds it, and the
housekeeping sweep records upload-API originals that have none instead of removing them."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from pymongo.errors import AutoReconnect

from tests.conftest import MONGODB_URI, REAL_MONGODB
from tests.repository.conftest import ADMIN, BLUE, UPLOADER, auth, file_config, jpeg, png
from tests.repository.records_collection import RecordsCollection
from tests.repository.test_direct_uploads import MILUV, direct_config, originals, presign, register
from thumbor_py.app import REPOSITORIES_KEY, create_app
from thumbor_py.repository import housekeeping
from thumbor_py.repository.records import RecordStore

BACKENDS = [
    "mongodb-double",
    "bucket",
    REAL_MONGODB,
]
ADMIN_HEADERS = {**MILUV, **auth(ADMIN)}


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RecordStore | None]:
    """The record store given to the app; None: records as JSON objects in the bucket."""
    if request.param == "mongodb-double":
        yield RecordStore(RecordsCollection())
        return
    if request.param == "bucket":
        yield None
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    collection = client["thumbor_py_test"][f"images_{uuid.uuid4().hex}"]
    try:
        yield RecordStore(collection)  # type: ignore[arg-type]
    finally:
        await collection.drop()
        await client.close()


async def app_client(
    aiohttp_client: Any, endpoint: str, bucket: str, store: RecordStore | None
) -> Any:
    config = direct_config(endpoint, bucket, allow_put=True, allow_delete=True)
    app = create_app(config) if store is None else create_app(config, repository_records=store)
    return await aiohttp_client(app)


async def record_of(client: Any, record_id: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/images/{record_id}", headers=ADMIN_HEADERS)
    return response.status, (await response.json() if response.status == 200 else {})


async def test_post_put_delete_keep_one_record(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, store: RecordStore | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, store)
    body = jpeg((400, 300))
    posted = await client.post("/image", data=body, headers={**ADMIN_HEADERS, "Slug": "cat.jpg"})
    assert posted.status == 201
    image_id = posted.headers["Location"].removeprefix("/image/")
    record_id = image_id.partition("/")[0]
    assert image_id == f"{record_id}/cat.jpg"
    assert len(record_id) == 32
    status, record = await record_of(client, record_id)
    assert status == 200
    assert {k: record[k] for k in ("id", "tenant", "key", "source", "owner")} == {
        "id": record_id,
        "tenant": "miluv",
        "key": f"originals/{image_id}",
        "source": f"originals/{image_id}",
        "owner": "admin",  # the API key's name
    }
    assert (record["bytes"], record["width"], record["height"]) == (len(body), 400, 300)
    assert (record["format"], record["content_type"]) == ("JPEG", "image/jpeg")
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["focal_point"] is None
    assert record["tags"] == []
    assert record["urls"]["presets"]["card"].endswith(f"/originals/{image_id}")

    replacement = png((64, 48))
    put = await client.put(f"/image/{image_id}", data=replacement, headers=ADMIN_HEADERS)
    assert put.status == 204
    status, updated = await record_of(client, record_id)
    assert (updated["bytes"], updated["width"], updated["height"]) == (len(replacement), 64, 48)
    assert (updated["format"], updated["sha256"]) == (
        "PNG",
        hashlib.sha256(replacement).hexdigest(),
    )
    assert updated["owner"] == "admin"
    assert updated["created_at"] == record["created_at"]
    assert updated["updated_at"] > record["updated_at"]

    deleted = await client.delete(f"/image/{image_id}", headers=ADMIN_HEADERS)
    assert deleted.status == 204
    assert (await record_of(client, record_id))[0] == 404
    assert (await client.delete(f"/image/{image_id}", headers=ADMIN_HEADERS)).status == 404


async def test_listing_finds_upload_api_and_registered_originals(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, store: RecordStore | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, store)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    answer = await (await presign(client)).json()
    s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=jpeg(color=BLUE))
    registered = await (await register(client, answer["upload_id"], owner="uploader")).json()
    api_ids = []
    for n in range(2):
        posted = await client.post(
            "/image", data=jpeg((100 + n, 80)), headers={**MILUV, **auth(UPLOADER)}
        )
        api_ids.append(posted.headers["Location"].removeprefix("/image/"))
    seen: list[str] = []
    cursor = None
    while True:  # pages of one: the cursor walks both kinds of ids
        params = {"owner": "uploader", "limit": "1", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/images", params=params, headers=ADMIN_HEADERS)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([registered["id"], *api_ids])
    # DELETE /images/<id> of an upload-API original removes the object too
    gone = api_ids[0]
    assert (await client.delete(f"/images/{gone}", headers=ADMIN_HEADERS)).status == 204
    assert (await client.get(f"/image/{gone}", headers=ADMIN_HEADERS)).status == 404
    assert (await record_of(client, gone))[0] == 404


async def test_delete_of_another_slug_leaves_the_record(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, store: RecordStore | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, store)
    posted = await client.post("/image", data=jpeg(), headers={**ADMIN_HEADERS, "Slug": "a.jpg"})
    record_id = posted.headers["Location"].removeprefix("/image/").partition("/")[0]
    other = await client.delete(f"/image/{record_id}/b.jpg", headers=ADMIN_HEADERS)
    assert other.status == 404
    assert (await record_of(client, record_id))[0] == 200


class FailingWrites(RecordsCollection):
    """The MongoDB double, unreachable for writes while ``failing``."""

    failing = True

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], upsert: bool = False
    ) -> None:
        if self.failing:
            raise AutoReconnect("connection refused")
        await super().replace_one(filter, replacement, upsert)


async def test_a_failed_record_update_answers_503_and_a_retry_corrects_it(
    aiohttp_client: Any, s3_endpoint: str, bucket: str
) -> None:
    collection = FailingWrites()
    collection.failing = False
    client = await app_client(aiohttp_client, s3_endpoint, bucket, RecordStore(collection))
    posted = await client.post("/image", data=jpeg(), headers=ADMIN_HEADERS)
    image_id = posted.headers["Location"].removeprefix("/image/")
    collection.failing = True
    replacement = jpeg((80, 60), BLUE)
    put = await client.put(f"/image/{image_id}", data=replacement, headers=ADMIN_HEADERS)
    assert put.status == 503
    stored = await client.get(f"/image/{image_id}", headers=ADMIN_HEADERS)
    assert await stored.read() == replacement  # the object is the truth; the record is stale
    assert (await record_of(client, image_id))[1]["width"] == 400
    collection.failing = False
    put = await client.put(f"/image/{image_id}", data=replacement, headers=ADMIN_HEADERS)
    assert put.status == 204
    assert (await record_of(client, image_id))[1]["width"] == 80


async def test_a_failed_record_write_removes_the_object(
    aiohttp_client: Any, s3_endpoint: str, bucket: str
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, RecordStore(FailingWrites()))
    posted = await client.post("/image", data=jpeg(), headers=ADMIN_HEADERS)
    assert posted.status == 503
    assert "image records" in await posted.text()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    assert originals(s3, bucket) == []  # nothing unfindable left behind


async def test_put_records_an_original_that_had_none(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, store: RecordStore | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, store)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    legacy = uuid.uuid4().hex
    s3.put_object(Bucket=bucket, Key=f"media/originals/{legacy}", Body=jpeg())
    assert (await record_of(client, legacy))[0] == 404
    put = await client.put(f"/image/{legacy}", data=jpeg((50, 40)), headers=ADMIN_HEADERS)
    assert put.status == 204
    status, record = await record_of(client, legacy)
    assert (status, record["owner"], record["width"]) == (200, "admin", 50)


async def test_housekeeping_records_upload_api_originals_without_one(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, store: RecordStore | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, store)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    legacy, broken = f"{uuid.uuid4().hex}/dog.jpg", uuid.uuid4().hex
    s3.put_object(Bucket=bucket, Key=f"media/originals/{legacy}", Body=jpeg((30, 20)))
    s3.put_object(Bucket=bucket, Key=f"media/originals/{broken}", Body=b"not an image")
    posted = await client.post("/image", data=jpeg(), headers=ADMIN_HEADERS)
    vanished = posted.headers["Location"].removeprefix("/image/")
    s3.delete_object(Bucket=bucket, Key=f"media/originals/{vanished}")  # record, no object
    repositories = client.app[REPOSITORIES_KEY]
    fresh = await housekeeping.sweep(repositories, dry_run=False)  # within the grace period
    assert (fresh.adopted, fresh.unreadable, fresh.originals) == ([], [], [])
    assert fresh.records == [f"miluv:{vanished}"]  # no grace: objects are written first
    later = time.time() + 7200
    dry = await housekeeping.sweep(repositories, dry_run=True, now=later)
    assert sorted(dry.adopted) == sorted([f"originals/{legacy}", f"originals/{broken}"])
    assert "would record: 2 upload-API originals" in dry.lines(dry_run=True)[-1]
    assert (await record_of(client, legacy.partition("/")[0]))[0] == 404  # dry: nothing done
    done = await housekeeping.sweep(repositories, dry_run=False, now=later)
    assert (done.adopted, done.unreadable) == ([f"originals/{legacy}"], [f"originals/{broken}"])
    assert done.originals == []  # upload-API originals are never removed
    status, record = await record_of(client, legacy.partition("/")[0])
    assert (status, record["owner"], record["width"], record["key"]) == (
        200,
        None,
        30,
        f"originals/{legacy}",
    )
    assert (await record_of(client, vanished))[0] == 404
    keys = originals(s3, bucket)
    assert f"media/originals/{legacy}" in keys
    assert f"media/originals/{broken}" in keys
    again = await housekeeping.sweep(repositories, dry_run=False, now=later)
    assert (again.adopted, again.records) == ([], [])
    assert again.unreadable == [f"originals/{broken}"]  # reported on every run, kept


async def test_a_file_storage_with_mongodb_keeps_records_too(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    collection = RecordsCollection()
    app = create_app(
        file_config(tmp_path, allow_delete=True), repository_records=RecordStore(collection)
    )
    client = await aiohttp_client(app)
    headers = auth(ADMIN)
    posted = await client.post("/image", data=jpeg(), headers={**headers, "Slug": "x.jpg"})
    image_id = posted.headers["Location"].removeprefix("/image/")
    assert (tmp_path / "originals" / "originals" / image_id).exists()
    answer = await client.get(f"/images/{image_id.partition('/')[0]}", headers=headers)
    assert (await answer.json())["key"] == f"originals/{image_id}"
    assert (await client.delete(f"/image/{image_id}", headers=headers)).status == 204
    assert collection.documents == {}


async def test_without_a_record_store_the_upload_api_works_as_before(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(file_config(tmp_path)))
    posted = await client.post("/image", data=jpeg(), headers=auth(ADMIN))
    assert posted.status == 201
    record_id = posted.headers["Location"].removeprefix("/image/")
    assert (await client.get(f"/images/{record_id}", headers=auth(ADMIN))).status == 409
