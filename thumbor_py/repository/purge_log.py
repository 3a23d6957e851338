"""A purge log for a server whose only shared store is the repository's original storage.

With ``coherence.purge_log: auto`` and no result storage to hold the log, a replaced or
deleted original would reach only the worker that took the ``PUT``; the others would keep
their decoded copies until ``revalidate_after``. When a repository is enabled, ``auto``
keeps the log beside its originals instead: a ``.thumbor-py/purges/`` folder under a file
storage's root (:class:`~thumbor_py.purge_logs.FilePurgeLog`), or JSON objects under the same
key in an S3 storage's bucket (:class:`S3PurgeLog`).

The S3 log merges read-then-write (S3 has no lock): two purges of one original at the same
moment may keep the earlier of two almost equal times, which still orders both after every
render that loaded the original before either.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from thumbor_py.coherence import PurgeLog, PurgeLogError, PurgeRecord, merge
from thumbor_py.config import Config, PluginConfig, RepositoryConfig
from thumbor_py.purge_logs import FilePurgeLog
from thumbor_py.repository.build import FILE_STORAGES, S3_STORAGES, storage_spec
from thumbor_py.repository.originals import s3_settings
from thumbor_py.s3client import S3Client, S3Settings, describe, error_code

FOLDER = ".thumbor-py/purges/"
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3PurgeLog:
    """One JSON object per identity (``<prefix>.thumbor-py/purges/<sha256>.json``)."""

    def __init__(self, settings: S3Settings) -> None:
        if not settings.bucket:
            raise ValueError("the S3 purge log needs a bucket")
        self._bucket = settings.bucket
        self._prefix = settings.prefix + FOLDER
        self._s3 = S3Client(settings)

    async def start(self) -> None:
        """Create the client off the loop."""
        await self._s3.start()

    async def aclose(self) -> None:
        """Close the client."""
        await self._s3.aclose()

    def _key(self, identity: str) -> str:
        return self._prefix + hashlib.sha256(identity.encode("utf-8")).hexdigest() + ".json"

    async def read(self, identity: str) -> PurgeRecord:
        """The record of ``identity`` (empty when none was written)."""
        key = self._key(identity)
        try:
            return await self._s3.call(lambda c: _read(c, self._bucket, key))
        except (ClientError, BotoCoreError) as exc:
            raise PurgeLogError(f"purge log: {describe(exc)}") from exc

    async def write(
        self, identity: str, *, purged_at: float | None = None, version: str | None = None
    ) -> None:
        """Merge into the record (read, merge, write)."""
        key = self._key(identity)

        def write(client: Any) -> None:
            record = merge(_read(client, self._bucket, key), purged_at, version)
            body = {"identity": identity, "purged_at": record.purged_at, "version": record.version}
            client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=json.dumps(body).encode(),
                ContentType="application/json",
            )

        try:
            await self._s3.call(write)
        except (ClientError, BotoCoreError) as exc:
            raise PurgeLogError(f"purge log: {describe(exc)}") from exc


def _read(client: Any, bucket: str, key: str) -> PurgeRecord:
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            return PurgeRecord()
        raise
    try:
        document = json.loads(body)
    except ValueError as exc:  # objects are written whole: this is not ours
        raise PurgeLogError("purge log: an unreadable record") from exc
    return PurgeRecord(document.get("purged_at"), document.get("version"))


def repository_purge_log(config: Config, executor: Executor | None = None) -> PurgeLog | None:
    """The log beside the first enabled repository's originals, or None (no repository, or
    a storage whose place is not known)."""
    for section in _enabled(config):
        spec: PluginConfig = storage_spec(config, section.storage, "repository.storage")
        settings = dict(spec.settings)
        if spec.use in FILE_STORAGES:
            root = Path(str(settings.get("root", "./samples"))).expanduser()
            return FilePurgeLog(root / FOLDER, executor)
        if spec.use in S3_STORAGES:
            return S3PurgeLog(s3_settings(settings))
    return None


def _enabled(config: Config) -> list[RepositoryConfig]:
    sections = [config.repository] if config.repository.enabled else []
    sections += [
        site.repository
        for site in config.tenants.sites
        if site.repository is not None and site.repository.enabled
    ]
    return sections
