"""Cloudimage URL security: ``ci_sign`` (URL signature) and ``ci_seal`` + ``ci_eqs`` (sealing).

As documented by Cloudimage: the signature is the hex SHA-1 of ``salt + "/" + origin`` with its
query (everything after ``/v7``, without ``ci_sign``), cut to the account's signature length;
the seal is the hex SHA-1 of ``"/" + origin path + ci_eqs + salt``, where ``ci_eqs`` is the
url-safe base64 (unpadded) of the sealed parameters. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import parse_qsl

from thumbor_py.errors import SignatureError


def signature(salt: str, signed_text: str, length: int = 18) -> str:
    """The ``ci_sign`` value for ``signed_text`` (``/origin?query`` without ``ci_sign``)."""
    return hashlib.sha1((salt + signed_text).encode("utf-8")).hexdigest()[:length]


def seal(salt: str, path: str, eqs: str, length: int = 18) -> str:
    """The ``ci_seal`` value for the origin ``path`` (with its leading ``/``) and ``ci_eqs``."""
    return hashlib.sha1((path + eqs + salt).encode("utf-8")).hexdigest()[:length]


def encode_eqs(query: str) -> str:
    """``ci_eqs`` for a query string such as ``w=300&h=300``."""
    return base64.urlsafe_b64encode(query.encode("utf-8")).decode("ascii").rstrip("=")


def decode_eqs(eqs: str) -> list[tuple[str, str]]:
    """The sealed parameters of ``ci_eqs``; a 400 when it is not base64 of a query."""
    try:
        padded = eqs + "=" * (-len(eqs) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SignatureError("ci_eqs is not url-safe base64 of a query") from exc
    return parse_qsl(text, keep_blank_values=True)


def matches(expected: str, given: str) -> bool:
    """Constant-time equality of two hex digests (case-insensitive)."""
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8"))
