"""One exception hierarchy for thumbor-py; HTTP-facing classes carry a ``status``.

::

    ThumborPyError
    ├── ConfigError                     start-up only, never an HTTP answer
    └── HttpError (status)
        ├── BadRequestError             400
        │   ├── UrlParseError           the path does not parse
        │   ├── SignatureError          missing, both, or wrong signature; unsafe when disabled
        │   ├── SourceForbiddenError    allowlist, SSRF guard, path escapes the root
        │   │   └── AddressBlockedError (ssrf.py; also an OSError) a refused IP address
        │   ├── SourceTooLargeError     over ``imaging.max_source_bytes``
        │   ├── ImageDecodeError        not an image, or undecodable
        │   ├── ImageTooLargeError      over ``max_pixels`` / ``max_output_pixels``
        │   ├── FilterArgumentError     a filter argument refused in strict mode
        │   └── FilterError             a filter could not apply its arguments to this image
        ├── UnauthorizedError           401  missing or wrong bearer token (admin, metrics)
        ├── ForbiddenError              403  an API key without the scope a request needs
        ├── PreconditionFailedError     412  an upload over the size limit or under the
        │                                    minimum dimensions (Thumbor's upload API)
        ├── UnsupportedMediaTypeError   415  an upload that is not an image
        ├── SourceNotFoundError         404
        ├── ConflictError               409  the server is not configured for this (purge)
        ├── UpstreamError               502
        ├── UpstreamTimeoutError        504
        ├── RetryLaterError             503, with ``Retry-After`` (``retry_after`` seconds)
        │   ├── RateLimitedError        429  an API key over its rate
        │   └── OverloadedError         503  the render queue is full
        │       └── DeadlineExceededError    a render stopped at its deadline
        ├── NotReadyError               503  ``/readyz``: a dependency does not answer
        └── StorageError                503  a result storage failed (the guard degrades it;
            │                                only purge and a strict /readyz answer with it)
            ├── StorageUnavailableError 503  unreachable, timed out, refused, I/O error
            └── StorageKeyError         500  a key with control characters or dot segments

The error middleware in ``app.py`` is the only place that turns these into responses.
"""

from __future__ import annotations


class ThumborPyError(Exception):
    """Base class of every error thumbor-py raises on purpose."""


class ConfigError(ThumborPyError):
    """The configuration is invalid; the message names the YAML key path."""


class HttpError(ThumborPyError):
    """An error answered with ``status`` and a one-line plain-text reason."""

    status: int = 500
    # Seconds for a ``Retry-After`` header; None: the answer carries none.
    retry_after: int | None = None

    @property
    def reason(self) -> str:
        """The one-line reason sent in the response body."""
        text = str(self) or type(self).__name__
        return " ".join(text.split())


class BadRequestError(HttpError):
    """The request cannot be served as asked (400)."""

    status = 400


class UrlParseError(BadRequestError):
    """The path is not a Thumbor URL."""


class SignatureError(BadRequestError):
    """The URL is not signed as required."""


class SourceForbiddenError(BadRequestError):
    """The source is not allowed (allowlist, private address, path outside the root)."""


class SourceTooLargeError(BadRequestError):
    """The source is over the configured byte limit."""


class ImageDecodeError(BadRequestError):
    """The source is not an image this server can decode."""


class ImageTooLargeError(BadRequestError):
    """The source or the requested output is over a pixel limit."""


class FilterArgumentError(BadRequestError):
    """A filter's arguments do not parse (only raised in strict mode)."""


class FilterError(BadRequestError):
    """A filter failed on this image with these arguments (e.g. a value out of any range)."""


class UnauthorizedError(HttpError):
    """The request lacks the bearer token an operations endpoint requires (401)."""

    status = 401


class ForbiddenError(HttpError):
    """The API key is valid but lacks the scope the request needs (403)."""

    status = 403


class PreconditionFailedError(HttpError):
    """An upload is over the size limit or under the minimum dimensions (412, as Thumbor)."""

    status = 412


class UnsupportedMediaTypeError(HttpError):
    """An upload's body is not an image this server can decode (415, as Thumbor)."""

    status = 415


class RetryLaterError(HttpError):
    """An answer the client should retry after ``retry_after`` seconds (``Retry-After``)."""

    status = 503
    default_message = "retry later"

    def __init__(self, message: str | None = None, retry_after: int = 1):
        super().__init__(message or self.default_message)
        self.retry_after = retry_after


class RateLimitedError(RetryLaterError):
    """An API key is over its request rate (429); the client should retry later."""

    status = 429
    default_message = "rate limit exceeded, retry later"


class ConflictError(HttpError):
    """The server is not configured for what the request asks (409), e.g. a purge without a
    result storage."""

    status = 409


class NotReadyError(HttpError):
    """A dependency the server needs does not answer (503 from ``/readyz``)."""

    status = 503


class SourceNotFoundError(HttpError):
    """The source does not exist (404)."""

    status = 404


class UpstreamError(HttpError):
    """The upstream answered with an error or a broken response (502)."""

    status = 502


class UpstreamTimeoutError(HttpError):
    """The upstream did not answer in time, or its name did not resolve (504)."""

    status = 504


class OverloadedError(RetryLaterError):
    """The render queue is full (503); the client should retry later."""

    status = 503
    default_message = "server overloaded, retry later"


class StorageError(HttpError):
    """A result storage failed; backends translate their library errors into these.

    The result-storage guard turns them into misses and dropped writes; only a purge, or a
    ``/readyz`` that requires the storage, answers with one (and never with its detail).
    """

    status = 503


class StorageUnavailableError(StorageError):
    """The storage backend is unreachable, timed out, refused us, or failed an I/O call."""


class StorageKeyError(StorageError):
    """An object key holds control characters or ``.``/``..`` segments (a plugin's bug)."""

    status = 500


class DeadlineExceededError(OverloadedError):
    """A render stopped at its request's deadline (503, with ``Retry-After``)."""
