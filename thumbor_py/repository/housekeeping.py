"""Housekeeping of the repository's bucket: the lifecycle rule for temporary uploads, and a
sweep that removes what the upload flow may leave behind.

``lifecycle_rules`` is what ``thumbor-py storage setup`` applies (merged with the bucket's
other rules, by ID) or prints. ``sweep`` is ``thumbor-py housekeep``: temporary uploads older
than twice their permission's life, content-addressed originals that no record names (older
than ``grace``: a registration stores the object before its record), and records whose
object is gone. Originals of Thumbor's upload API (``<uuid>[/slug]``) are never removed:
one without a record (stored before records were kept, or left by a create whose record
write and clean-up both failed) and older than ``grace`` is *recorded* instead (decoded with
the upload limits; owner unknown), so every original ends with exactly one record. One that
no longer decodes is reported and kept. S3 original storages with a record store only.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from thumbor_py import metrics
from thumbor_py.errors import HttpError, StorageUnavailableError
from thumbor_py.repository.build import Repositories
from thumbor_py.repository.direct import DirectUploads
from thumbor_py.repository.originals import S3OriginalStorage
from thumbor_py.repository.service import is_id, record_id
from thumbor_py.s3client import describe, error_code

RULE_ID = "thumbor-py-temporary-uploads"
_CONTENT_KEY = re.compile(r"[0-9a-f]{64}\.(?:jpg|png|webp|gif|avif)")


@dataclass(slots=True)
class Report:
    """What a sweep found (and removed, unless it was a dry run)."""

    temporaries: list[str] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # upload-API originals recorded
    unreadable: list[str] = field(default_factory=list)  # upload-API originals kept as is

    def lines(self, *, dry_run: bool) -> list[str]:
        """One line per item, then a summary."""
        verb = "would remove" if dry_run else "removed"
        adopt = "would record" if dry_run else "recorded"
        found = [
            *(f"{verb} temporary upload {k}" for k in self.temporaries),
            *(f"{verb} original without a record {k}" for k in self.originals),
            *(f"{verb} record without an object {k}" for k in self.records),
            *(f"{adopt} upload-API original without a record {k}" for k in self.adopted),
            *(f"kept unreadable upload-API original without a record {k}" for k in self.unreadable),
        ]
        total = len(self.temporaries), len(self.originals), len(self.records)
        summary = "{}: {} temporary, {} originals, {} records".format(verb, *total)
        if self.adopted:
            summary += f"; {adopt}: {len(self.adopted)} upload-API originals"
        return [*found, summary]


def lifecycle_rules(repositories: Repositories) -> dict[S3OriginalStorage, dict[str, Any]]:
    """The rule each S3 storage's bucket needs: expire temporary uploads after a day."""
    rules: dict[S3OriginalStorage, dict[str, Any]] = {}
    for direct in repositories.direct.values():
        storage = direct.repository.storage
        if not isinstance(storage, S3OriginalStorage):
            continue
        rules[storage] = {
            "ID": RULE_ID,
            "Filter": {"Prefix": storage.object_key_prefix(direct.temporary_prefix)},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    return rules


async def apply_lifecycle(storage: S3OriginalStorage, rule: dict[str, Any]) -> None:
    """Put ``rule`` into the bucket's lifecycle configuration, keeping the other rules."""

    def apply(client: Any) -> None:
        try:
            current = client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)
            rules = [r for r in current.get("Rules", []) if r.get("ID") != RULE_ID]
        except ClientError as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        client.put_bucket_lifecycle_configuration(
            Bucket=storage.bucket, LifecycleConfiguration={"Rules": [*rules, rule]}
        )

    try:
        await storage.client.call(apply)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailableError(f"lifecycle rule not applied: {describe(exc)}") from exc


async def sweep(
    repositories: Repositories, *, dry_run: bool, grace: float = 3600.0, now: float | None = None
) -> Report:
    """Find (and unless ``dry_run``, remove) what the upload flow left behind."""
    report = Report()
    moment = time.time() if now is None else now
    for direct in repositories.direct.values():
        storage = direct.repository.storage
        if not isinstance(storage, S3OriginalStorage) or direct.record_store is None:
            continue
        await _temporaries(direct, storage, report, dry_run=dry_run, now=moment)
        await _originals(direct, storage, report, dry_run=dry_run, older=moment - grace)
        await _records(direct, storage, report, dry_run=dry_run)
    return report


async def _temporaries(
    direct: DirectUploads, storage: S3OriginalStorage, report: Report, *, dry_run: bool, now: float
) -> None:
    name = direct.repository.settings.name
    found = await storage.keys(f"{direct.temporary_prefix}{name}/")
    found += await storage.keys(f"{direct.temporary_prefix}.registered/{name}/")
    for key, modified in found:
        if now - modified > 2 * direct.expires:
            report.temporaries.append(key)
            if not dry_run:
                await storage.delete(key)
                metrics.REPOSITORY.labels(operation="housekeep", outcome="temporary").inc()


async def _originals(
    direct: DirectUploads,
    storage: S3OriginalStorage,
    report: Report,
    *,
    dry_run: bool,
    older: float,
) -> None:
    settings = direct.repository.settings
    records = direct.records()
    for key, modified in await storage.keys(settings.prefix):
        name = key.removeprefix(settings.prefix)
        if modified > older:
            continue
        if is_id(name):
            await _upload_api_original(direct, key, report, dry_run=dry_run)
            continue
        if not _CONTENT_KEY.fullmatch(name):
            continue
        if await records.get(settings.name, name.partition(".")[0]) is None:
            report.originals.append(key)
            if not dry_run:
                await storage.delete(key)
                await direct.repository.purge(settings.source_prefix + key)
                metrics.REPOSITORY.labels(operation="housekeep", outcome="original").inc()


async def _upload_api_original(
    direct: DirectUploads, key: str, report: Report, *, dry_run: bool
) -> None:
    """Record an upload-API original that has no record (never remove it)."""
    repository, records = direct.repository, direct.records()
    image_id = key.removeprefix(repository.settings.prefix)
    if await records.get(repository.settings.name, record_id(image_id)) is not None:
        return
    if dry_run:
        report.adopted.append(key)
        return
    original = await repository.storage.get(key)
    if original is None:  # deleted meanwhile
        return
    try:
        described = await repository.describe(original.data, counted=False)
    except HttpError:
        report.unreadable.append(key)
        return
    await records.add(repository.record(image_id, original.data, described, None))
    report.adopted.append(key)
    metrics.REPOSITORY.labels(operation="housekeep", outcome="recorded").inc()


async def _records(
    direct: DirectUploads, storage: S3OriginalStorage, report: Report, *, dry_run: bool
) -> None:
    settings = direct.repository.settings
    records = direct.records()
    for image_id, key in await records.all_keys(settings.name):
        if await storage.stat(key) is None:
            report.records.append(f"{settings.name}:{image_id}")
            if not dry_run:
                await records.delete(settings.name, image_id)
                metrics.REPOSITORY.labels(operation="housekeep", outcome="record").inc()
