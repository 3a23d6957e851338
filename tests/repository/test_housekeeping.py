"""Housekeeping on moto's S3: the lifecycle rule (CLI, merged with the bucket's own rules)
and the sweep of abandoned temporaries, originals without records, records without objects."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.repository.conftest import ADMIN, auth, jpeg
from tests.repository.records_collection import RecordsCollection
from tests.repository.test_direct_uploads import (
    MILUV,
    direct_config,
    originals,
    presign,
    register,
)
from thumbor_py import cli
from thumbor_py.app import REPOSITORIES_KEY, create_app
from thumbor_py.repository import housekeeping
from thumbor_py.repository.records import RecordStore


def test_storage_setup_prints_or_applies_the_rule_keeping_other_rules(
    s3_endpoint: str, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    other = {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled"}
    other["Expiration"] = {"Days": 30}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
    config = direct_config(s3_endpoint, bucket)
    path = tmp_path / "config.yaml"
    data = {
        "loader": {"use": "s3", "settings": dict(config.loader.settings)},
        "tenants": {
            "sites": [
                {
                    "name": "miluv",
                    "hosts": ["media.miluv.app"],
                    "key": "k",
                    "repository": {"enabled": True, "require_key": False},
                }
            ]
        },
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert cli.main(["storage", "setup", "-c", str(path), "--print"]) == 0
    printed = capsys.readouterr().out
    assert '"Prefix": "media/incoming/"' in printed
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["logs"]  # --print changes nothing
    for _ in range(2):  # applying twice keeps one rule of ours
        assert cli.main(["storage", "setup", "-c", str(path)]) == 0
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert sorted(r["ID"] for r in rules) == ["logs", housekeeping.RULE_ID]
    ours = next(r for r in rules if r["ID"] == housekeeping.RULE_ID)
    assert ours["Expiration"] == {"Days": 1}


def test_hash_key_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("secret-key\n"))
    assert cli.main(["hash-key"]) == 0
    assert capsys.readouterr().out.strip() == hashlib.sha256(b"secret-key").hexdigest()


@pytest.mark.parametrize("backend", ["mongodb-double", "bucket"])
async def test_sweep_dry_run_then_removal(
    aiohttp_client: Any, s3_endpoint: str, bucket: str, backend: str
) -> None:
    config = direct_config(s3_endpoint, bucket)
    if backend == "bucket":
        app = create_app(config)
    else:
        app = create_app(config, repository_records=RecordStore(RecordsCollection()))
    client = await aiohttp_client(app)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    kept, gone = [], []
    for colour in ((200, 0, 0), (0, 200, 0)):
        answer = await (await presign(client)).json()
        s3.put_object(Bucket=bucket, Key=answer["fields"]["key"], Body=jpeg(color=colour))
        record = await (await register(client, answer["upload_id"])).json()
        kept.append(record)
    s3.delete_object(Bucket=bucket, Key=f"media/{kept[1]['key']}")  # record without object
    gone.append(kept.pop())
    orphan = f"originals/{'e' * 64}.jpg"
    s3.put_object(Bucket=bucket, Key=f"media/{orphan}", Body=jpeg())
    abandoned = await (await presign(client)).json()
    s3.put_object(Bucket=bucket, Key=abandoned["fields"]["key"], Body=b"never registered")
    thumbor_api = await client.post("/image", data=jpeg(), headers={**MILUV, **auth(ADMIN)})
    assert thumbor_api.status == 201
    repositories = app[REPOSITORIES_KEY]
    later = time.time() + 7200
    dry = await housekeeping.sweep(repositories, dry_run=True, now=later)
    abandoned_key = abandoned["fields"]["key"].removeprefix("media/")
    markers = [k for k in dry.temporaries if k.startswith("incoming/.registered/miluv/")]
    assert sorted(dry.temporaries) == sorted([abandoned_key, *markers])
    assert len(markers) == 2  # the two registered upload ids, past their permission's life
    assert dry.originals == [orphan]
    assert dry.records == [f"miluv:{gone[0]['id']}"]
    assert dry.lines(dry_run=True)[-1] == "would remove: 3 temporary, 1 originals, 1 records"
    before = originals(s3, bucket)
    done = await housekeeping.sweep(repositories, dry_run=False, now=later)
    assert done.originals == [orphan]
    after = originals(s3, bucket)
    assert set(before) - set(after) == {f"media/{orphan}", abandoned["fields"]["key"]}
    assert f"media/{kept[0]['key']}" in after  # recorded: kept
    api_id = thumbor_api.headers["Location"].removeprefix("/image/")
    assert f"media/originals/{api_id}" in after  # the upload API's originals: never swept
    removed = await client.get(f"/images/{gone[0]['id']}", headers={**MILUV, **auth(ADMIN)})
    assert removed.status == 404
    again = await housekeeping.sweep(repositories, dry_run=False, now=later)
    assert (again.temporaries, again.originals, again.records) == ([], [], [])
    metrics = await (await client.get("/metrics")).text()
    assert 'thumbor_py_repository_total{operation="housekeep",outcome="record"}' in metrics
