"""Build Thumbor URLs from Python (templates) and from the ``thumbor-py url`` command."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from thumbor_py.signing import sign
from thumbor_py.url import (
    Crop,
    Dimension,
    Halign,
    ImageRequest,
    Trim,
    TrimCorner,
    Valign,
    parse_filters,
)

# Characters left as they are in the image part: path punctuation Thumbor sources use.
_IMAGE_SAFE = "/:@!$&'()*+,;=-._~"


def build_url(
    image: str,
    *,
    key: str | None = None,
    width: int | str = 0,
    height: int | str = 0,
    fit_in: bool = False,
    adaptive: bool = False,
    full: bool = False,
    smart: bool = False,
    halign: Halign = "center",
    valign: Valign = "middle",
    crop: tuple[int, int, int, int] | None = None,
    trim: TrimCorner | bool = False,
    trim_tolerance: int = 0,
    flip_horizontal: bool = False,
    flip_vertical: bool = False,
    meta: bool = False,
    debug: bool = False,
    filters: Sequence[str] | str = (),
) -> str:
    """A Thumbor path for ``image``: signed with ``key``, or ``/unsafe/`` without one.

    ``image`` is percent-encoded where a URL needs it ("?", "#", "%", spaces, non-ASCII), so
    the signature covers exactly the bytes a browser will send.
    """
    filter_text = filters if isinstance(filters, str) else ":".join(filters)
    request = ImageRequest(
        image=quote_path(image),
        debug=debug,
        meta=meta,
        trim=Trim("top-left" if trim is True else trim, trim_tolerance) if trim else None,
        crop=Crop(*crop) if crop and any(crop) else None,
        fit_in=fit_in or adaptive or full,
        adaptive=adaptive,
        full=full,
        width=_dimension(width),
        height=_dimension(height),
        flip_horizontal=flip_horizontal,
        flip_vertical=flip_vertical,
        halign=halign,
        valign=valign,
        smart=smart,
        filters=parse_filters(filter_text) if filter_text else (),
    )
    if key is None:
        return f"/unsafe/{request.path}"
    # Not signed_path(): it strips leading slashes, which belong to an image like "/a.jpg".
    return f"/{sign(key, request.path)}/{request.path}"


def quote_path(text: str) -> str:
    """``text`` percent-encoded where a URL needs it, leaving the path punctuation Thumbor
    URLs use; the one encoding both ``build_url`` and ``thumbor-py sign`` apply."""
    return quote(text, safe=_IMAGE_SAFE)


def _dimension(value: int | str) -> Dimension:
    if value == "orig":
        return "orig"
    number = int(value)
    if number < 0:
        raise ValueError("width and height must not be negative; use flip_horizontal/vertical")
    return number
