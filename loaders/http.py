"""HTTP(S) loader: one shared aiohttp session, size and time limits, and a connect-time SSRF guard.

Redirects are followed here, not by aiohttp, so every hop meets the allowlist, the scheme check
and the SSRF guard again. The guard runs where the address is known: in the resolver (every
name, on every hop, so DNS rebinding gains nothing) and in the socket factory (the address each
socket actually connects to, which covers IP literals).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from loaders._http_guard import GuardedResolver, check_address, guarded_socket_factory
from loaders._http_source import (
    SourceAllowlist,
    canonical_url,
    conditional_headers,
    redirect_target,
    source_url,
    version_of,
)
from thumbor_py.errors import (
    SourceForbiddenError,
    SourceNotFoundError,
    SourceTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thumbor_py.plugins import PluginContext, Source
from thumbor_py.ssrf import AddressBlockedError, parse_address, parse_networks

T = TypeVar("T")
_CHUNK = 64 * 1024
_MISSING_STATUSES = frozenset({401, 403, 404, 410})


class HttpLoader:
    """Fetches ``http(s)://`` sources; refuses private addresses unless told otherwise."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``settings`` for the ``http`` loader."""

        connect_timeout: float = 3.0
        total_timeout: float = 10.0
        max_redirects: int = 5
        allowed_sources: tuple[str, ...] = ()
        allow_private_networks: bool = False
        allowed_networks: tuple[str, ...] = ()
        default_scheme: str | None = None
        verify_tls: bool = True
        max_connections: int = 100
        user_agent: str = "thumbor-py"

    def __init__(
        self,
        settings: Settings,
        context: PluginContext,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        _validate(settings)
        self._settings = settings
        self._max_bytes = context.max_source_bytes
        self._allowlist = SourceAllowlist.parse(settings.allowed_sources)
        self._networks = parse_networks(settings.allowed_networks)
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the process-wide client session."""
        if self._session is None:
            self._session = self._create_session()

    async def aclose(self) -> None:
        """Close the session and its connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _create_session(self) -> aiohttp.ClientSession:
        settings = self._settings
        resolver = self._resolver or aiohttp.DefaultResolver()
        guarded = not settings.allow_private_networks
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections,
            ssl=settings.verify_tls,
            ttl_dns_cache=10,
            resolver=GuardedResolver(resolver, self._networks) if guarded else resolver,
            socket_factory=guarded_socket_factory(self._networks) if guarded else None,
        )
        timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            connect=settings.connect_timeout,
            sock_connect=settings.connect_timeout,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            # One session serves every origin: never carry cookies between requests.
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": settings.user_agent},
            trust_env=False,
        )

    def identity(self, source: str) -> str:
        """The normalised URL of ``source`` (see :func:`canonical_url`); no I/O."""
        return canonical_url(source_url(source, self._settings.default_scheme))

    async def load(self, source: str) -> Source:
        """Fetch ``source``, following at most ``max_redirects`` redirects."""
        url = source_url(source, self._settings.default_scheme)
        loaded = await self._fetch(url, {}, self._read)
        return dataclasses.replace(loaded, identity=canonical_url(url))

    async def unchanged(self, source: str, version: str) -> bool:
        """A conditional GET: True on 304 (or the same validator), False when it changed."""
        url = source_url(source, self._settings.default_scheme)
        return await self._fetch(url, conditional_headers(version), _same_version(version))

    async def _fetch(
        self,
        url: URL,
        headers: dict[str, str],
        answer: Callable[[aiohttp.ClientResponse], Awaitable[T]],
    ) -> T:
        if self._session is None:
            raise RuntimeError("HttpLoader.start() was not awaited")
        try:
            async with asyncio.timeout(self._settings.total_timeout):
                for _hop in range(self._settings.max_redirects + 1):
                    self._check_url(url)
                    with _translate_errors():
                        async with self._session.get(
                            url, allow_redirects=False, headers=headers
                        ) as response:
                            target = redirect_target(
                                url, response.status, response.headers.get(aiohttp.hdrs.LOCATION)
                            )
                            if target is None:
                                return await answer(response)
                    url = target
        except TimeoutError as exc:
            raise UpstreamTimeoutError("upstream timed out") from exc
        raise UpstreamError(f"more than {self._settings.max_redirects} redirects")

    def _check_url(self, url: URL) -> None:
        if not self._allowlist.allows(url):
            raise SourceForbiddenError("source is not in allowed_sources")
        host = url.host or ""
        if not self._settings.allow_private_networks and parse_address(host) is not None:
            try:
                check_address(host, self._networks)
            except AddressBlockedError as exc:
                raise SourceForbiddenError(str(exc)) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> Source:
        _check_status(response.status)
        length = response.content_length
        if length is not None and length > self._max_bytes:
            raise self._too_large(length)
        data = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            data += chunk
            if len(data) > self._max_bytes:
                response.close()
                raise self._too_large()
        headers = response.headers
        return Source(
            data=bytes(data),
            content_type=headers.get(aiohttp.hdrs.CONTENT_TYPE),
            etag=headers.get(aiohttp.hdrs.ETAG),
            last_modified=_http_date(headers.get(aiohttp.hdrs.LAST_MODIFIED)),
            version=version_of(
                headers.get(aiohttp.hdrs.ETAG), headers.get(aiohttp.hdrs.LAST_MODIFIED)
            ),
        )

    def _too_large(self, size: int | None = None) -> SourceTooLargeError:
        what = f"is {size} bytes" if size is not None else "is larger"
        return SourceTooLargeError(f"source {what}, over the {self._max_bytes}-byte limit")


def _validate(settings: HttpLoader.Settings) -> None:
    if settings.connect_timeout <= 0 or settings.total_timeout <= 0:
        raise ValueError("connect_timeout and total_timeout must be greater than 0")
    if settings.max_redirects < 0:
        raise ValueError("max_redirects must be 0 or more")
    if settings.max_connections <= 0:
        raise ValueError("max_connections must be greater than 0")
    if settings.default_scheme not in (None, "http", "https"):
        raise ValueError("default_scheme must be null, 'http' or 'https'")


def _same_version(
    version: str,
) -> Callable[[aiohttp.ClientResponse], Awaitable[bool]]:
    async def answer(response: aiohttp.ClientResponse) -> bool:
        if response.status == 304:
            return True
        _check_status(response.status)  # 404 and kin raise: the cached copy is gone too
        headers = response.headers
        now = version_of(headers.get(aiohttp.hdrs.ETAG), headers.get(aiohttp.hdrs.LAST_MODIFIED))
        return now == version  # the body is not read: closing the response drops it

    return answer


def _check_status(status: int) -> None:
    if 200 <= status < 300:
        return
    if status in _MISSING_STATUSES or (400 <= status < 500 and status not in (408, 429)):
        raise SourceNotFoundError(f"upstream answered {status}")
    raise UpstreamError(f"upstream answered {status}")


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    """aiohttp's exceptions, by type, to ours; the messages never carry addresses."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressBlockedError):
            raise SourceForbiddenError(str(exc.os_error)) from exc
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            raise UpstreamTimeoutError("source host name does not resolve") from exc
        raise UpstreamError("cannot connect to the upstream") from exc
    except aiohttp.InvalidURL as exc:
        raise SourceForbiddenError("source is not a valid URL") from exc
    except TimeoutError as exc:
        raise UpstreamTimeoutError("upstream timed out") from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamError("upstream sent a broken body") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("upstream sent a broken response") from exc


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
