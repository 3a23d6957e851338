"""HTTP validators of rendered bodies: strong ETags and ``If-None-Match`` matching."""

from __future__ import annotations

import hashlib


def etag_for(data: bytes) -> str:
    """A strong ETag for a response body."""
    return f'"{hashlib.blake2b(data, digest_size=16).hexdigest()}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, ``*`` allowed)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in (item.strip().removeprefix("W/") for item in header.split(","))
