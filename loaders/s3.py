"""S3 loader (AWS S3, DigitalOcean Spaces, any S3 API): one boto3 client per process, off the loop.

Sources are ``s3://bucket/key``, ``bucket/key`` when no bucket is configured, or ``key`` under a
configured bucket; ``prefix`` is put in front of every key. Credentials, region and endpoint
come from the settings or, when left out, from boto3's standard chain (``AWS_*`` environment
variables, shared config files, instance roles).
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from thumbor_py.errors import (
    HttpError,
    SourceForbiddenError,
    SourceNotFoundError,
    SourceTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thumbor_py.plugins import PluginContext, Source
from thumbor_py.s3client import s3_client

SCHEME = "s3://"
# botocore's own bucket-name check: anything else would fail parameter validation.
_BUCKET = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403"})


class S3Loader:
    """Loads objects from one S3-compatible endpoint."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``settings`` for the ``s3`` loader."""

        bucket: str | None = None
        allowed_buckets: tuple[str, ...] = ()
        prefix: str = ""
        endpoint_url: str | None = None
        region: str | None = None
        access_key_id: str | None = None
        secret_access_key: str | None = None
        profile: str | None = None
        addressing_style: Literal["auto", "virtual", "path"] = "auto"
        max_pool_connections: int = 32
        connect_timeout: float = 3.0
        read_timeout: float = 10.0
        max_attempts: int = 3

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        if settings.max_pool_connections <= 0 or settings.max_attempts <= 0:
            raise ValueError("max_pool_connections and max_attempts must be greater than 0")
        if settings.connect_timeout <= 0 or settings.read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be greater than 0")
        if settings.bucket is not None and not _BUCKET.fullmatch(settings.bucket):
            raise ValueError(f"bucket {settings.bucket!r} is not a valid bucket name")
        self._settings = settings
        self._max_bytes = context.max_source_bytes
        self._executor: ThreadPoolExecutor | None = None
        self._client: Any = None

    async def start(self) -> None:
        """Create the client (it reads config files, so off the loop) and its thread pool."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(
            max_workers=self._settings.max_pool_connections, thread_name_prefix="thumbor-py-s3"
        )
        loop = asyncio.get_running_loop()
        self._client = await loop.run_in_executor(executor, self._create_client)
        self._executor = executor

    async def aclose(self) -> None:
        """Close the client's connection pool and join the threads, off the loop."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        client, self._client = self._client, None
        await asyncio.get_running_loop().run_in_executor(executor, client.close)
        await asyncio.to_thread(executor.shutdown, wait=True)

    def _create_client(self) -> Any:
        settings = self._settings
        return s3_client(
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            access_key_id=settings.access_key_id,
            secret_access_key=settings.secret_access_key,
            profile=settings.profile,
            max_pool_connections=settings.max_pool_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_attempts=settings.max_attempts,
            addressing_style=settings.addressing_style,
        )

    def locate(self, source: str) -> tuple[str, str]:
        """The ``(bucket, key)`` that ``source`` names; refuses what the settings do not allow."""
        settings = self._settings
        named = source.startswith(SCHEME)
        rest = source.removeprefix(SCHEME)
        if named or settings.bucket is None:
            bucket, _, rest = rest.lstrip("/").partition("/")
        else:
            bucket = settings.bucket
        if not _BUCKET.fullmatch(bucket):
            raise SourceNotFoundError("source names no valid bucket")
        allowed = (settings.bucket,) if settings.bucket else settings.allowed_buckets
        if allowed and bucket not in allowed:
            raise SourceForbiddenError("source bucket is not allowed")
        key = rest.lstrip("/")
        # S3 keeps ".." literally, but some S3-compatible servers and proxies normalise it,
        # which would step out of ``prefix``.
        if ".." in key.split("/"):
            raise SourceForbiddenError("source key contains a '..' segment")
        if not key:
            raise SourceNotFoundError("source names no object key")
        return bucket, settings.prefix + key

    def identity(self, source: str) -> str:
        """``s3://bucket/key`` (the prefix included): one name for every spelling."""
        return "{}{}/{}".format(SCHEME, *self.locate(source))

    async def unchanged(self, source: str, version: str) -> bool:
        """Whether the object's ETag is still ``version``: one HEAD request."""
        if self._executor is None:
            raise RuntimeError("S3Loader.start() was not awaited")
        bucket, key = self.locate(source)
        head = functools.partial(self._client.head_object, Bucket=bucket, Key=key)
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._executor, head)
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc) from exc
        return bool(answer.get("ETag") == version)

    async def load(self, source: str) -> Source:
        """Fetch the object in the loader's own thread pool."""
        if self._executor is None:
            raise RuntimeError("S3Loader.start() was not awaited")
        bucket, key = self.locate(source)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._get, bucket, key)

    def _get(self, bucket: str, key: str) -> Source:
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                if length is not None and length > self._max_bytes:
                    raise self._too_large(f"is {length} bytes")
                data = body.read(self._max_bytes + 1)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc) from exc
        if len(data) > self._max_bytes:
            raise self._too_large("is larger")
        return Source(
            data=data,
            content_type=response.get("ContentType"),
            etag=response.get("ETag"),
            last_modified=response.get("LastModified"),
            identity=f"{SCHEME}{bucket}/{key}",
            version=response.get("ETag"),
        )

    def _too_large(self, what: str) -> SourceTooLargeError:
        return SourceTooLargeError(f"source {what}, over the {self._max_bytes}-byte limit")


def translate_error(exc: ClientError | BotoCoreError) -> HttpError:
    """botocore's exceptions, by type and by the structured error code, to ours."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if error.get("Code") in _MISSING_CODES or (
            400 <= status < 500 and status not in (408, 429)
        ):
            return SourceNotFoundError("source not found in S3")
        return UpstreamError(f"S3 answered {status or error.get('Code', 'an error')}")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return UpstreamTimeoutError("S3 timed out")
    if isinstance(exc, EndpointConnectionError) and _caused_by(
        exc.kwargs.get("error"), socket.gaierror
    ):
        return UpstreamTimeoutError("S3 endpoint host name does not resolve")
    return UpstreamError("S3 request failed")


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
