"""Direct uploads against moto's S3 server: a presigned POST made by boto3's own client, sent
with a real HTTP client, then registration: dedup, records, URLs, refusals, other tenants."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from typing import Any

import aiohttp
import boto3
import pytest
from PIL import Image

from tests.repository.conftest import ADMIN, READER, UPLOADER, auth, color_of, jpeg, keys, png
from tests.repository.records_collection import RecordsCollection
from thumbor_py.app import create_app
from thumbor_py.builder import build_url
from thumbor_py.config import Config, ImagingConfig
from thumbor_py.errors import SourceNotFoundError
from thumbor_py.repository.auth import KeyRing, hash_key
from thumbor_py.repository.checks import UploadLimits
from thumbor_py.repository.direct import DirectUploads, Metadata
from thumbor_py.repository.originals import S3OriginalStorage
from thumbor_py.repository.records import RecordStore
from thumbor_py.repository.service import Repository, RepositorySettings
from thumbor_py.s3client import S3Settings
from thumbor_py.signing import verify
from thumbor_py.url import parse

MILUV = {"Host": "media.miluv.app"}
LOVIA = {"Host": "media.lovia.life"}
KEY = "miluv-signing-key"


def direct_config(endpoint: str, bucket: str, **repository: Any) -> Config:
    s3 = {"bucket": bucket, "prefix": "media/", "endpoint_url": endpoint}
    other = [{"name": "lovia", "sha256": hash_key("lovia-key"), "scopes": ["upload", "register"]}]
    return Config.from_mapping(
        {
            "loader": {"use": "s3", "settings": s3},
            "imaging": {"detectors": []},
            "coherence": {"check_interval": 0.05},
            "tenants": {
                "presets": {"card": "w=320&h=180&func=crop", "thumb": "w=96&h=96&func=crop"},
                "sites": [
                    {
                        "name": "miluv",
                        "hosts": ["media.miluv.app"],
                        "key": KEY,
                        "aliases": {"_media_": ""},
                        "repository": {"enabled": True, "keys": keys(), **repository},
                    },
                    {
                        "name": "lovia",
                        "hosts": ["media.lovia.life"],
                        "key": "lovia-signing-key",
                        "repository": {"enabled": True, "prefix": "lovia/", "keys": other},
                    },
                ],
            },
        },
        env={},
    )


@pytest.fixture(params=["mongodb-double", "bucket"])
def records(request: pytest.FixtureRequest) -> RecordsCollection | None:
    """The MongoDB double, or None: no MongoDB, records as JSON objects in the bucket."""
    return RecordsCollection() if request.param == "mongodb-double" else None


def originals(s3: Any, bucket: str) -> list[str]:
    """The bucket's keys, without record objects (of the bucket record store) and markers
    of registered upload ids."""
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    skip = ("media/records/", "media/incoming/.registered/")
    return [o["Key"] for o in listed if not o["Key"].startswith(skip)]


async def app_client(
    aiohttp_client: Any,
    endpoint: str,
    bucket: str,
    records: RecordsCollection | None,
    **repository: Any,
) -> Any:
    config = direct_config(endpoint, bucket, **repository)
    if records is None:
        return await aiohttp_client(create_app(config))
    app = create_app(config, repository_records=RecordStore(records))
    return await aiohttp_client(app)


async def presign(client: Any, key: str = UPLOADER, content_type: str = "image/jpeg") -> Any:
    return await client.post(
        "/uploads", json={"content_type": content_type}, headers={**MILUV, **auth(key)}
    )


async def send(answer: dict[str, Any], body: bytes, content_type: str = "image/jpeg") -> int:
    """POST the file to the bucket as a browser form would: the policy's fields, then file."""
    form = aiohttp.FormData()
    for name, value in answer["fields"].items():
        form.add_field(name, value)
    form.add_field("file", body, filename="upload", content_type=content_type)
    async with aiohttp.ClientSession() as session, session.post(answer["url"], data=form) as r:
        return r.status


async def register(client: Any, upload_id: str, key: str = ADMIN, **metadata: Any) -> Any:
    body = {"upload_id": upload_id, **metadata}
    return await client.post("/images", json=body, headers={**MILUV, **auth(key)})


def policy(answer: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(answer["fields"]["policy"]))
    return decoded


async def test_presign_upload_register_serve_and_dedup(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, records: RecordsCollection | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, records)
    answered = await presign(client)
    assert answered.status == 200, await answered.text()
    answer = await answered.json()
    conditions = policy(answer)["conditions"]
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, 50 * 1024 * 1024] in conditions
    assert answer["fields"]["key"] == f"media/incoming/miluv/{answer['upload_id']}"
    body = jpeg((600, 400))
    assert await send(answer, body) in (200, 201, 204)
    registered = await register(
        client,
        answer["upload_id"],
        title="A red field",
        alt="red",
        owner="ana",
        tags=["red", "field"],
        focal_point={"x": 0.25, "y": 0.5},
    )
    assert registered.status == 201, await registered.text()
    record = await registered.json()
    digest = record["id"]
    assert record["key"] == f"originals/{digest}.jpg"
    assert (record["width"], record["height"], record["format"]) == (600, 400, "JPEG")
    assert record["bytes"] == len(body)
    assert record["focal_point"] == {"x": 0.25, "y": 0.5}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    assert originals(s3, bucket) == [f"media/originals/{digest}.jpg"]  # temporary gone
    # The URLs are signed with the tenant's key and serve the image at once.
    card = record["urls"]["presets"]["card"]
    verify(parse(card), card, keys=(KEY,), allow_unsafe=False)
    assert "focal(" in card
    served = await client.get(card, headers=MILUV)
    assert served.status == 200, await served.text()
    assert Image.open(io.BytesIO(await served.read())).size == (320, 180)
    assert record["urls"]["srcset"].count("w, ") == 2
    # The same bytes again: stored once, the existing record answered.
    again = await presign(client)
    second = await again.json()
    assert await send(second, body) in (200, 201, 204)
    duplicate = await register(client, second["upload_id"], title="other")
    assert duplicate.status == 200
    assert (await duplicate.json())["title"] == "A red field"
    assert len(originals(s3, bucket)) == 1
    # Registered once: the temporary object is gone, a second registration is a 404, also
    # after the still-valid POST was replayed (the id is marked as used).
    assert (await register(client, answer["upload_id"])).status == 404
    assert await send(answer, jpeg((50, 50))) in (200, 201, 204)
    replayed = await register(client, answer["upload_id"])
    assert replayed.status == 404
    assert "replay" in await replayed.text()
    got = await client.get(f"/images/{digest}", headers={**MILUV, **auth(READER)})
    assert (await got.json())["owner"] == "ana"


async def test_hostile_registrations(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, records: RecordsCollection | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, records, max_bytes=200_000)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    cases = [
        (b"<svg onload=alert(1)>", 415),
        (jpeg()[:300], 415),
        (b"\x00" * 200_001, 412),  # bigger than the policy allows (put there directly)
    ]
    for body, status in cases:
        answer = await (await presign(client)).json()
        s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=body)
        refused = await register(client, answer["upload_id"])
        assert refused.status == status, await refused.text()
        assert originals(s3, bucket) == []  # temporary deleted
    bad = await register(client, uuid.uuid4().hex)
    assert bad.status == 404
    assert (await register(client, "../../etc/passwd")).status == 404
    answer = await (await presign(client)).json()
    s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=png())
    assert (await register(client, answer["upload_id"], tags="x")).status == 400
    assert (await register(client, answer["upload_id"], focal_point={"x": 2})).status == 400


async def test_scopes_and_other_tenants(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, records: RecordsCollection | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, records)
    assert (await presign(client, key=READER)).status == 403
    assert (await presign(client, key="lovia-key")).status == 401
    assert (await presign(client, content_type="text/html")).status == 400
    answer = await (await presign(client)).json()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=jpeg())
    assert (await register(client, answer["upload_id"], key=UPLOADER)).status == 403
    # Lovia's key on Lovia's host cannot reach Miluv's temporary object.
    stolen = await client.post(
        "/images",
        json={"upload_id": answer["upload_id"]},
        headers={**LOVIA, **auth("lovia-key")},
    )
    assert stolen.status == 404
    assert (await register(client, answer["upload_id"])).status == 201


async def test_listing_by_owner_and_tag_with_cursors(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, records: RecordsCollection | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, records, allow_delete=True)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    ids = []
    for index in range(5):
        answer = await (await presign(client)).json()
        body = jpeg((100 + index, 80))
        s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=body)
        owner = "ana" if index % 2 == 0 else "bo"
        response = await register(client, answer["upload_id"], owner=owner, tags=["t", owner])
        ids.append((await response.json())["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"owner": "ana", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get("/images", params=params, headers={**MILUV, **auth(READER)})
        ).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids[0::2])
    tagged = await client.get("/images", params={"tag": "bo"}, headers={**MILUV, **auth(ADMIN)})
    assert sorted(i["id"] for i in (await tagged.json())["items"]) == sorted(ids[1::2])
    gone = ids[0]
    assert (await client.delete(f"/images/{gone}", headers={**MILUV, **auth(READER)})).status == 403
    assert (await client.delete(f"/images/{gone}", headers={**MILUV, **auth(ADMIN)})).status == 204
    assert (await client.get(f"/images/{gone}", headers={**MILUV, **auth(ADMIN)})).status == 404
    assert records is None or records.indexes  # created at start


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def direct_uploads(
    endpoint: str, bucket: str, clock: Clock
) -> tuple[DirectUploads, S3OriginalStorage]:
    storage = S3OriginalStorage(S3Settings(bucket=bucket, endpoint_url=endpoint))
    await storage.start()
    repository = Repository(
        RepositorySettings(
            name="miluv",
            prefix="originals/",
            source_prefix="",
            allow_put=False,
            allow_delete=False,
            limits=UploadLimits(max_bytes=1_000_000),
        ),
        storage=storage,
        keys=KeyRing((), required=False),
        imaging=ImagingConfig(),
        executor=None,
        purge=_no_purge,
    )
    direct = DirectUploads(
        repository,
        RecordStore(RecordsCollection()),
        temporary_prefix="incoming/",
        expires=60,
        content_types=("image/jpeg",),
        clock=clock,
    )
    return direct, storage


async def _no_purge(source: str) -> int:
    return 0


async def test_expired_permissions_are_refused_by_the_server_too(
    s3_endpoint: str, bucket: str
) -> None:
    """moto accepts any POST (it checks no policy): the server refuses an object written
    after the permission's expiry, and a registration one more expiry later."""
    clock = Clock()
    direct, storage = await direct_uploads(s3_endpoint, bucket, clock)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    late = await direct.presign("image/jpeg")
    assert policy(late)["expiration"].endswith("Z")
    clock.now -= 120  # the permission was issued two minutes ago: now expired
    late = await direct.presign("image/jpeg")
    s3.put_object(Bucket=bucket, Key=late["fields"]["key"], Body=jpeg())
    with pytest.raises(SourceNotFoundError, match="expired"):
        await direct.register(late["upload_id"], Metadata())
    clock.now = time.time()
    slow = await direct.presign("image/jpeg")
    s3.put_object(Bucket=bucket, Key=slow["fields"]["key"], Body=jpeg())
    clock.now += 130  # uploaded in time, registered after two expiries (and the skew)
    with pytest.raises(SourceNotFoundError, match="expired"):
        await direct.register(slow["upload_id"], Metadata())
    clock.now = time.time()
    fine = await direct.presign("image/jpeg")
    s3.put_object(Bucket=bucket, Key=fine["fields"]["key"], Body=jpeg())
    record, created = await direct.register(fine["upload_id"], Metadata(owner="ana"))
    assert created
    assert record.owner == "ana"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == [f"incoming/.registered/miluv/{fine['upload_id']}", record.key]
    await storage.aclose()


def two_colours() -> bytes:
    """600x200: red on the left two thirds, blue on the right third."""
    image = Image.new("RGB", (600, 200), (220, 20, 20))
    image.paste((20, 20, 220), (400, 0, 600, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_smart_crops_of_a_registered_original_use_its_focal_point(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, records: RecordsCollection | None
) -> None:
    client = await app_client(aiohttp_client, s3_endpoint, bucket, records)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    answer = await (await presign(client, content_type="image/png")).json()
    s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=two_colours())
    registered = await register(client, answer["upload_id"], focal_point={"x": 0.9, "y": 0.5})
    source = (await registered.json())["source"]
    # Any smart URL of it, in either dialect, not only the URLs answered at registration.
    smart = build_url(source, key=KEY, width=100, height=100, smart=True)
    plain = build_url(source, key=KEY, width=100, height=100)
    cloudimage = f"/v7/_media_/{source}?w=100&h=100&func=crop&gravity=auto"
    colours = {}
    for name, path in (("smart", smart), ("plain", plain), ("cloudimage", cloudimage)):
        response = await client.get(path, headers=MILUV)
        assert response.status == 200, (name, await response.text())
        colours[name] = color_of(await response.read())
    assert colours == {"smart": "blue", "plain": "red", "cloudimage": "blue"}
