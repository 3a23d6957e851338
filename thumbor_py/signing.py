"""Thumbor URL signatures: url-safe base64 of HMAC-SHA1 over the path after the first segment."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote

from thumbor_py.errors import SignatureError
from thumbor_py.url import SIGNATURE_LENGTH, ImageRequest, split_signed_path


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def sign(key: str | bytes, path: str) -> str:
    """The 28-character signature of ``path`` (no leading slash), as Thumbor computes it."""
    digest = hmac.new(_key_bytes(key), path.encode("utf-8"), hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def is_valid(key: str | bytes, signature: str, path: str) -> bool:
    """Whether ``signature`` signs ``path`` under ``key``, compared in constant time."""
    return hmac.compare_digest(sign(key, path).encode("ascii"), signature.encode("utf-8"))


def verify(
    request: ImageRequest,
    raw_path: str,
    *,
    keys: tuple[str, ...],
    allow_unsafe: bool,
) -> None:
    """Check a parsed request against the raw path it came from; raise :class:`SignatureError`.

    Any of ``keys`` may sign (the first is current; the rest allow key rotation).
    """
    if request.unsafe:
        if not allow_unsafe:
            raise SignatureError("unsafe URLs are not allowed by this server")
        return
    segment, signed_text = split_signed_path(raw_path)
    signature = unquote(segment)
    if len(signature) != SIGNATURE_LENGTH:
        raise SignatureError("URL has neither /unsafe/ nor a 28-character signature")
    if not keys or not any(is_valid(key, signature, signed_text) for key in keys):
        raise SignatureError("URL signature does not match")


def signed_path(key: str | bytes, path: str) -> str:
    """``/SIGNATURE/path`` for a path given without its leading slash."""
    path = path.lstrip("/")
    return f"/{sign(key, path)}/{path}"
