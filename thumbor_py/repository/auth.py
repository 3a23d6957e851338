"""API keys for the repository: stored hashed, checked in constant time, scoped, rate-limited.

A key arrives as ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``), never in the
URL, so it never reaches an access log line. Its SHA-256 is compared with every configured
hash by ``hmac.compare_digest``, without stopping at the first match. Each key has a token
bucket; the buckets live in this process (with N workers or replicas, a key gets up to N
times its rate: the limit is a guard against runaway clients, not a quota).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from thumbor_py import metrics
from thumbor_py.config import ApiKeyConfig, ApiScope
from thumbor_py.errors import (
    ConfigError,
    ForbiddenError,
    HttpError,
    RateLimitedError,
    UnauthorizedError,
)

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A configured key: its name (for logs and records), hash, scopes and rate."""

    name: str
    digest: bytes
    scopes: frozenset[ApiScope]
    rate: float
    burst: int


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; one token per request."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one will be there."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate


class KeyRing:
    """One tenant's keys; ``require`` answers the key of a request or raises 401/403/429."""

    def __init__(
        self,
        keys: Iterable[ApiKey],
        *,
        required: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = tuple(keys)
        self._required = required
        self._buckets = {key.name: TokenBucket(key.rate, key.burst, clock) for key in self._keys}

    @property
    def required(self) -> bool:
        """Whether requests need a key (else anyone may call, as in Thumbor)."""
        return self._required

    def require(self, headers: Mapping[str, str], scope: ApiScope) -> ApiKey | None:
        """The request's key, when it holds ``scope`` and is under its rate; None when keys
        are not required and none was given."""
        try:
            return self._require(headers, scope)
        except HttpError as exc:
            metrics.REPOSITORY.labels(operation="auth", outcome=str(exc.status)).inc()
            raise

    def _require(self, headers: Mapping[str, str], scope: ApiScope) -> ApiKey | None:
        given = _presented(headers)
        if given is None:
            if self._required:
                raise UnauthorizedError("an API key is required")
            return None
        key = self.match(given)
        if key is None:
            raise UnauthorizedError("unknown API key")
        if scope not in key.scopes:
            raise ForbiddenError(f"this API key lacks the {scope!r} scope")
        wait = self._buckets[key.name].take()
        if wait > 0:
            raise RateLimitedError(retry_after=max(1, math.ceil(wait)))
        return key

    def match(self, given: bytes) -> ApiKey | None:
        """The key whose hash is the SHA-256 of ``given``; every hash is compared."""
        digest = hashlib.sha256(given).digest()
        found = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


def _presented(headers: Mapping[str, str]) -> bytes | None:
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise UnauthorizedError("expected 'Authorization: Bearer <API key>'")
        return _bytes(value.strip())
    api_key = headers.get("X-API-Key")
    return None if api_key is None else _bytes(api_key.strip())


def _bytes(value: str) -> bytes:
    try:  # non-UTF-8 header bytes arrive as surrogates: such a value matches no key
        return value.encode("utf-8")
    except UnicodeEncodeError:
        return b"\x00"


def build_keys(configs: Iterable[ApiKeyConfig], key: str) -> tuple[ApiKey, ...]:
    """The configured keys, checked; errors name ``key[i]``."""
    keys: list[ApiKey] = []
    for index, config in enumerate(configs):
        where = f"{key}[{index}]"
        digest = config.sha256.strip().lower()
        if not _HEX64.fullmatch(digest):
            raise ConfigError(f"{where}.sha256: expected 64 hex digits (sha256 of the key)")
        if config.rate <= 0 or config.burst < 1:
            raise ConfigError(f"{where}: rate must be > 0 and burst >= 1")
        if any(k.name == config.name for k in keys):
            raise ConfigError(f"{where}.name: {config.name!r} is used twice")
        keys.append(
            ApiKey(
                config.name,
                bytes.fromhex(digest),
                frozenset(config.scopes),
                config.rate,
                config.burst,
            )
        )
    return tuple(keys)


def hash_key(key: str) -> str:
    """The ``sha256`` to write in the config for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
