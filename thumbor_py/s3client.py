"""The one way thumbor-py talks to S3: shared settings, one client per plugin, one thread pool.

:class:`S3Settings` is the part of a plugin's ``settings`` section that both the ``s3``
loader and the ``s3`` result storage accept (each adds its own fields by subclassing), so
the two have the same names, the same defaults and the same client lifecycle:
:class:`S3Client` builds the boto3 client off the event loop in ``start``, runs every call
in its own thread pool, and closes the client and joins the pool in ``aclose``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

T = TypeVar("T")

# S3 error codes that mean "these credentials are refused", whatever the object.
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AccountProblem",
        "InvalidSecurity",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Settings:
    """Settings every S3 plugin shares (``loader.settings`` / ``result_storage.settings``).

    Credentials left out come from boto3's standard chain (``AWS_*`` variables, shared
    files, instance roles); for the ``s3`` result storage they may also come from
    ``THUMBOR_PY_RESULT_STORAGE_ACCESS_KEY_ID`` / ``..._SECRET_ACCESS_KEY`` through the
    config's environment overrides.
    """

    bucket: str | None = None
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

    def check(self) -> None:
        """Refuse values boto3 would only refuse at the first request (ValueError)."""
        if self.max_pool_connections <= 0 or self.max_attempts <= 0:
            raise ValueError("max_pool_connections and max_attempts must be greater than 0")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be greater than 0")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")

    @property
    def endpoint_label(self) -> str:
        """Where requests go, for log lines (no credentials, no path)."""
        return (
            self.endpoint_url.split("://", 1)[-1].split("/", 1)[0] if self.endpoint_url else "AWS"
        )


def s3_client(settings: S3Settings) -> Any:
    """A boto3 client for S3 or an S3-compatible store (Spaces, MinIO).

    Building it reads config files: call it off the event loop, once per plugin.
    """
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
        profile_name=settings.profile,
    )
    config = BotoConfig(
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        s3={"addressing_style": settings.addressing_style},
        user_agent_extra="thumbor-py",
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


class S3Client:
    """A boto3 client and the thread pool its blocking calls run in (one per plugin)."""

    def __init__(self, settings: S3Settings, *, client: Any = None) -> None:
        settings.check()
        self.settings = settings
        self._client: Any = client
        self._executor: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """Whether ``start`` ran (and ``aclose`` did not)."""
        return self._executor is not None

    @property
    def client(self) -> Any:
        """The boto3 client (after ``start``); use it only inside :attr:`executor`."""
        if self._executor is None:
            raise RuntimeError("S3Client.start() was not awaited")
        return self._client

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The pool the client's blocking calls run in (after ``start``)."""
        if self._executor is None:
            raise RuntimeError("S3Client.start() was not awaited")
        return self._executor

    async def start(self) -> None:
        """Create the pool and, off the loop, the client (unless one was given)."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(
            max_workers=self.settings.max_pool_connections, thread_name_prefix="thumbor-py-s3"
        )
        if self._client is None:
            loop = asyncio.get_running_loop()
            self._client = await loop.run_in_executor(executor, s3_client, self.settings)
        self._executor = executor

    async def aclose(self) -> None:
        """Close the client's connection pool and join the threads, off the loop."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        client, self._client = self._client, None
        await asyncio.get_running_loop().run_in_executor(executor, client.close)
        await asyncio.to_thread(executor.shutdown, wait=True)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(client, *args)`` in the pool."""
        if self._executor is None:
            raise RuntimeError("S3Client.start() was not awaited")
        client = self._client
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(client, *args))


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ``ClientError`` (``NoSuchKey``, ``AccessDenied``, ``404``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    """The HTTP status S3 answered with (0 when unknown)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def describe(exc: ClientError | BotoCoreError) -> str:
    """A one-line cause with no secret and no object key in it: ``AccessDenied (403)``,
    ``NoCredentialsError``, ``EndpointConnectionError (ConnectionRefusedError)``."""
    if isinstance(exc, ClientError):
        return f"{error_code(exc) or 'error'} ({http_status(exc) or '?'})"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return f"{type(exc).__name__}: no answer in time"
    # Not str(exc): it holds the object's URL, which would make every key a new failure.
    inner = getattr(exc, "kwargs", {}).get("error")
    return f"{type(exc).__name__} ({type(inner).__name__})" if inner else type(exc).__name__


def refuses_credentials(exc: ClientError | BotoCoreError) -> bool:
    """Whether S3 refused (or boto3 could not find) the credentials, whatever the object."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return True
    return isinstance(exc, ClientError) and error_code(exc) in CREDENTIAL_CODES
