"""Logging: plain or JSON lines, each carrying the id of the request it belongs to."""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import sys
from datetime import UTC, datetime

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, Response, StreamResponse

# Statuses that mean "we could not serve it" for a reason outside the request: an operator
# should see them without turning INFO on (a 500 is logged with its traceback elsewhere).
_WARNING_STATUSES = frozenset({500, 502, 503, 504})
_NO_BODY_STATUSES = frozenset({204, 304})
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class _RequestIds:
    """32 hex digits per request: 16 random ones per process (new after a fork) and a
    counter, unique like ``uuid4().hex`` at a tenth of its cost (no urandom per request)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFFFFFF:016x}"


new_request_id = _RequestIds()
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamp every record with the current request id (``-`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``record.request_id``; never drops a record."""
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(log_format: str = "plain", level: str = "INFO") -> None:
    """Send logs to stderr as plain text or JSON lines, with request ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLogger(AbstractAccessLogger):
    """One access-log line per request, with its id, status, body size and duration."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the access line for a finished request (5xx at WARNING)."""
        request_id = response.headers.get("X-Request-ID", "-")
        size = body_bytes(request, response)
        fields = {
            "remote": request.remote,
            "method": request.method,
            "path": request.path_qs,
            "status": response.status,
            "bytes": size,
            "duration_ms": round(time * 1000, 2),
            "user_agent": request.headers.get("User-Agent", "-"),
        }
        self.logger.log(
            logging.WARNING if response.status in _WARNING_STATUSES else logging.INFO,
            '%s "%s %s" %s %s %.1fms "%s"',
            request.remote,
            request.method,
            request.path_qs,
            response.status,
            size,
            time * 1000,
            fields["user_agent"],
            extra={"request_id": request_id, "fields": fields},
        )


def body_bytes(request: BaseRequest, response: StreamResponse) -> int:
    """Bytes of the body sent, headers excluded (aiohttp's ``body_length`` counts both)."""
    if request.method == "HEAD" or response.status in _NO_BODY_STATUSES or response.status < 200:
        return 0
    if isinstance(response, Response) and isinstance(response.body, bytes | bytearray):
        return len(response.body)
    if response.content_length is not None:
        return response.content_length
    return max(response.body_length - _header_bytes(response), 0)


def _header_bytes(response: StreamResponse) -> int:
    """The size of the status line and headers as written (``HTTP/1.1 200 OK\r\n`` ...)."""
    status_line = len(f"HTTP/1.1 {response.status} {response.reason}\r\n")
    headers = sum(len(name) + len(value) + 4 for name, value in response.headers.items())
    return status_line + headers + 2
