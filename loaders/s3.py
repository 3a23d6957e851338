"""S3 loader (AWS S3, DigitalOcean Spaces, any S3 API): one boto3 client per process, off the loop.

Sources are ``s3://bucket/key``, ``bucket/key`` when no bucket is configured, or ``key`` under a
configured bucket; ``prefix`` is put in front of every key. Credentials, region and endpoint
come from the settings or, when left out, from boto3's standard chain (``AWS_*`` environment
variables, shared config files, instance roles).
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
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
from thumbor_py.s3client import (
    S3Client,
    S3Settings,
    describe,
    error_code,
    http_status,
    refuses_credentials,
)

log = logging.getLogger(__name__)

SCHEME = "s3://"
# botocore's own bucket-name check: anything else would fail parameter validation.
_BUCKET = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403"})
# Distinct failures remembered for "log once"; forgotten all at once past this many.
_MAX_REMEMBERED = 1024


class S3Loader:
    """Loads objects from one S3-compatible endpoint."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings(S3Settings):
        """``settings`` for the ``s3`` loader (the shared :class:`S3Settings` plus its own)."""

        allowed_buckets: tuple[str, ...] = ()

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        if settings.bucket is not None and not _BUCKET.fullmatch(settings.bucket):
            raise ValueError(f"bucket {settings.bucket!r} is not a valid bucket name")
        self._settings = settings
        self._s3 = S3Client(settings)
        self._max_bytes = context.max_source_bytes
        self._logged: set[tuple[str, str]] = set()

    async def start(self) -> None:
        """Create the client (it reads config files, so off the loop) and its thread pool."""
        await self._s3.start()

    async def aclose(self) -> None:
        """Close the client's connection pool and join the threads, off the loop."""
        await self._s3.aclose()

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
        if not self._s3.started:
            raise RuntimeError("S3Loader.start() was not awaited")
        bucket, key = self.locate(source)
        try:
            answer = await self._s3.call(_head, bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc) from exc
        return bool(answer.get("ETag") == version)

    async def load(self, source: str) -> Source:
        """Fetch the object in the loader's own thread pool."""
        if not self._s3.started:
            raise RuntimeError("S3Loader.start() was not awaited")
        bucket, key = self.locate(source)
        try:
            return await self._s3.call(self._get, bucket, key)
        except (ClientError, BotoCoreError) as exc:
            self._warn_once(bucket, exc)
            raise translate_error(exc) from exc

    def _warn_once(self, bucket: str, exc: ClientError | BotoCoreError) -> None:
        """Log the cause of a failure at WARNING the first time it is seen (not per request)."""
        if isinstance(exc, ClientError) and error_code(exc) in ("NoSuchKey", "404"):
            return  # a plain miss: the 404 says it all
        cause = describe(exc)
        if (bucket, cause) in self._logged:
            return
        if len(self._logged) >= _MAX_REMEMBERED:
            self._logged.clear()
        self._logged.add((bucket, cause))
        log.warning(
            "S3 loader: bucket %s at %s failed with %s (answered %d; logged once)",
            bucket,
            self._settings.endpoint_label,
            cause,
            translate_error(exc).status,
        )

    def _get(self, client: Any, bucket: str, key: str) -> Source:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            length = response.get("ContentLength")
            if length is not None and length > self._max_bytes:
                raise self._too_large(f"is {length} bytes")
            data = body.read(self._max_bytes + 1)
        finally:
            body.close()
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
    if refuses_credentials(exc):
        what = "has no credentials" if isinstance(exc, NoCredentialsError) else "was refused"
        return UpstreamError(f"the S3 storage refused access: the loader's key {what}")
    if isinstance(exc, ClientError):
        status = http_status(exc)
        if error_code(exc) in _MISSING_CODES or (400 <= status < 500 and status not in (408, 429)):
            return SourceNotFoundError("source not found in S3")
        return UpstreamError(f"S3 answered {status or error_code(exc) or 'an error'}")
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


def _head(client: Any, bucket: str, key: str) -> dict[str, Any]:
    """The object's metadata (``HeadObject``), in the client's thread pool."""
    answer: dict[str, Any] = client.head_object(Bucket=bucket, Key=key)
    return answer
