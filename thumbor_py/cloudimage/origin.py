"""Split a Cloudimage URL into its origin (query kept byte for byte) and its own parameters.

A presigned S3 URL's query and the dialect's parameters share one query string
(``/v7/https://b.s3…/a.jpg?X-Amz-Signature=…&w=640``). Pairs whose name is one of the dialect's
belong to the dialect; every other pair stays in the origin's query, in its original order
and encoding, except a pair encoded twice (the responsive plugin's doing), decoded once.
With ``ci_url_encoded=1`` the origin is percent-encoded in the path and the whole query
belongs to the dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from thumbor_py.errors import UrlParseError

# Every parameter name the dialect reads; anything else belongs to the origin.
OPERATIONS = frozenset(
    {
        "w", "width", "h", "height", "org_if_sml", "func", "bg_color", "bg_colour",
        "gravity", "tl_px", "br_px", "flip", "r", "trim", "radius", "dpr", "q",
        "force_format", "sharp", "fit_enlarge", "p", "bright", "brightness", "contrast",
        "saturate", "saturation", "grey", "gray", "greyscale", "grayscale", "blur", "pix",
        "pixelate", "sharpen", "ci_info", "ci_url_encoded", "ci_sign", "ci_seal", "ci_eqs",
    }
)  # fmt: skip
_COLLAPSED_SCHEME = re.compile(r"^(https?):/(?!/)", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)
_DOUBLE = re.compile(r"%25[0-9A-Fa-f]{2}")


@dataclass(frozen=True, slots=True)
class SplitUrl:
    """A Cloudimage URL taken apart; ``origin`` is raw (still percent-encoded) text."""

    origin: str
    params: tuple[tuple[str, str], ...]
    signed_text: str

    @property
    def absolute(self) -> bool:
        """Whether the origin is a full ``http(s)://`` URL."""
        return bool(_ABSOLUTE.match(self.origin))

    def get(self, name: str) -> str | None:
        """The last value given for ``name``, or None."""
        found = None
        for key, value in self.params:
            if key == name:
                found = value
        return found


def split(raw_path: str, raw_query: str) -> SplitUrl:
    """Split ``raw_path`` (after ``/v7``, with its leading ``/``) and the raw query string.

    ``signed_text`` is what ``ci_sign`` covers: the path and query without ``ci_sign``.
    """
    path = raw_path[1:] if raw_path.startswith("/") else raw_path
    pairs = [pair for pair in raw_query.split("&") if pair] if raw_query else []
    unsigned = "&".join(pair for pair in pairs if _name(pair) != "ci_sign")
    signed_text = "/" + path + ("?" + unsigned if unsigned else "")
    own = [pair for pair in pairs if _name(pair) in OPERATIONS]
    params = tuple(_decode(pair) for pair in own)
    if dict(params).get("ci_url_encoded") == "1":
        origin = unquote(path)
        params = tuple(_decode(pair) for pair in pairs)
    else:
        foreign = [_undouble(pair) for pair in pairs if _name(pair) not in OPERATIONS]
        origin = path + ("?" + "&".join(foreign) if foreign else "")
    origin = _COLLAPSED_SCHEME.sub(r"\1://", origin, count=1)
    if not origin or origin.startswith("?"):
        raise UrlParseError("no origin image was specified in the URL")
    return SplitUrl(origin, params, signed_text)


def _undouble(pair: str) -> str:
    """A pair as the origin signed it: the responsive plugin re-encodes the origin's query
    values with ``encodeURIComponent`` (``%2F`` arrives as ``%252F``); such a pair is decoded
    once. Any other pair is kept byte for byte."""
    return unquote(pair) if _DOUBLE.search(pair) else pair


def _name(pair: str) -> str:
    return unquote_plus(pair.partition("=")[0])


def _decode(pair: str) -> tuple[str, str]:
    name, _, value = pair.partition("=")
    return unquote_plus(name), unquote_plus(value)
