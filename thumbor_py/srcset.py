"""Template helpers: ``srcset(...)`` builds signed Thumbor URLs for a list of widths.

``register_jinja(environment, ...)`` adds it as the ``thumbor_srcset`` filter when Jinja2 is
importable; thumbor-py does not depend on Jinja2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from thumbor_py.builder import build_url
from thumbor_py.url import Halign, Valign


def srcset(
    image: str,
    widths: Iterable[int],
    *,
    key: str | None,
    base_url: str = "",
    aspect_ratio: float | None = None,
    fit_in: bool = False,
    smart: bool = False,
    halign: Halign = "center",
    valign: Valign = "middle",
    filters: Sequence[str] | str = (),
) -> str:
    """``"URL 320w, URL 640w, …"`` for ``image`` at each width (sorted, duplicates dropped).

    ``aspect_ratio`` (width / height) also fixes the height, so every candidate has the same
    crop; without it the height follows the image. ``key=None`` builds ``/unsafe/`` URLs.
    """
    sizes = sorted({int(width) for width in widths if int(width) > 0})
    if not sizes:
        raise ValueError("srcset needs at least one width greater than 0")
    if aspect_ratio is not None and aspect_ratio <= 0:
        raise ValueError("aspect_ratio must be greater than 0")
    candidates = []
    for width in sizes:
        height = 0 if aspect_ratio is None else max(1, math.ceil(width / aspect_ratio))
        path = build_url(
            image,
            key=key,
            width=width,
            height=height,
            fit_in=fit_in,
            smart=smart,
            halign=halign,
            valign=valign,
            filters=filters,
        )
        candidates.append(f"{base_url.rstrip('/')}{path} {width}w")
    return ", ".join(candidates)


def register_jinja(environment: object, *, key: str | None, base_url: str = "") -> bool:
    """Add ``{{ image | thumbor_srcset([320, 640], aspect_ratio=1.5) }}`` to a Jinja2
    ``Environment``; False (and nothing done) when Jinja2 is not installed."""
    try:
        import jinja2  # noqa: F401  (only to know whether templates can use it)
    except ImportError:
        return False
    filters = getattr(environment, "filters", None)
    if not isinstance(filters, dict):
        raise TypeError("register_jinja expects a jinja2.Environment")

    def thumbor_srcset(image: str, widths: Iterable[int], **options: object) -> str:
        return srcset(image, widths, key=key, base_url=base_url, **options)  # type: ignore[arg-type]

    filters["thumbor_srcset"] = thumbor_srcset
    return True
