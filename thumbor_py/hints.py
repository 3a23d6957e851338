"""Client hints: widths and DPR the browser sends, rounded up to a tenant's allowed widths.

A Cloudimage URL asks for them with ``w=auto`` and/or ``dpr=auto``, a Thumbor URL with
``filters:hints()`` (inside the signature); the response then carries
``Accept-CH`` (so the browser keeps sending them) and ``Vary`` on the headers read. Rounding up
to a short list of widths keeps the number of variants, and so the cache, small.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from thumbor_py.url import ImageRequest

WIDTH_HEADERS = ("Sec-CH-Width", "Width")
DPR_HEADERS = ("Sec-CH-DPR", "DPR")
ACCEPT_CH = "Sec-CH-Width, Sec-CH-DPR, Width, DPR"
_NUMBER = re.compile(r"\d{1,5}(?:\.\d{1,4})?")
MAX_WIDTH = 10_000


@dataclass(frozen=True, slots=True)
class Hinted:
    """Parameters with the hints applied, and the request headers they depend on."""

    params: Mapping[str, str]
    vary: tuple[str, ...] = ()


def _header(headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = headers.get(name, "").strip()
        if _NUMBER.fullmatch(value) and float(value) > 0:
            return float(value)
    return None


def round_up(width: int, allowed: tuple[int, ...]) -> int:
    """The smallest allowed width >= ``width`` (the largest when none is); as is if no list."""
    if not allowed:
        return min(width, MAX_WIDTH)
    return next((size for size in allowed if size >= width), allowed[-1])


def apply(
    params: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    allowed_widths: tuple[int, ...],
    max_dpr: float,
) -> Hinted:
    """Replace ``w=auto`` / ``dpr=auto`` with what the browser sent (sorted ``allowed``)."""
    wants_width = params.get("w") == "auto" or params.get("width") == "auto"
    wants_dpr = params.get("dpr") == "auto"
    if not wants_width and not wants_dpr:
        return Hinted(params)
    out = {k: v for k, v in params.items() if k not in ("width", "dpr")}
    vary: list[str] = []
    dpr = 1.0
    if wants_dpr:
        vary += DPR_HEADERS
        dpr = min(_header(headers, DPR_HEADERS) or 1.0, max_dpr)
    width = _int(params.get("w") or params.get("width"))
    if wants_width:
        vary += WIDTH_HEADERS
        # Sec-CH-Width is already in device pixels: the DPR is in it.
        hinted = _header(headers, WIDTH_HEADERS)
        width = math.ceil(hinted) if hinted else (allowed_widths[-1] if allowed_widths else 0)
        dpr = 1.0
    height = _int(params.get("h") or params.get("height"))
    if width:
        out["w"] = str(round_up(math.ceil(width * dpr), allowed_widths))
    if height:
        out["h"] = str(min(math.ceil(height * dpr), MAX_WIDTH))
    out.pop("height", None)
    if not width:
        out.pop("w", None)
    return Hinted(out, tuple(vary))


def _int(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() and len(value) <= 5 else 0


HINTS_FILTER = "hints"


def apply_to_request(
    request: ImageRequest,
    headers: Mapping[str, str],
    *,
    allowed_widths: tuple[int, ...],
    max_dpr: float,
) -> tuple[ImageRequest, tuple[str, ...]]:
    """A Thumbor request with ``filters:hints()``: its width becomes the hinted one.

    The URL's width is the CSS width: ``Sec-CH-Width`` replaces it (device pixels), else it is
    multiplied by ``Sec-CH-DPR``; the result is rounded up to ``allowed_widths`` and the height
    follows the URL's aspect ratio. Without hints the URL's size is used as it is.
    """
    if not any(f.name == HINTS_FILTER for f in request.filters):
        return request, ()
    filters = tuple(f for f in request.filters if f.name != HINTS_FILTER)
    request = dataclasses.replace(request, filters=filters)
    vary = WIDTH_HEADERS + DPR_HEADERS
    css_width = request.width if isinstance(request.width, int) else 0
    hinted = _header(headers, WIDTH_HEADERS)
    dpr = min(_header(headers, DPR_HEADERS) or 1.0, max_dpr)
    if hinted is not None:
        width = math.ceil(hinted)
    elif css_width and dpr != 1.0:
        width = math.ceil(css_width * dpr)
    else:
        return request, vary
    width = round_up(width, allowed_widths)
    height = request.height
    if isinstance(height, int) and height and css_width:
        height = max(1, round(height * width / css_width))
    return dataclasses.replace(request, width=width, height=height), vary
