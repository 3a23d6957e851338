"""Accept negotiation in one place: the output *format class*, decided before any lookup.

The class is part of the result key, so it must depend only on the URL, the ``Accept``
header and the configuration, never on the source. ``default`` means "the source's own
format, or what the URL's ``format()`` asks for".
"""

from __future__ import annotations

from dataclasses import dataclass

from thumbor_py.config import ImagingConfig
from thumbor_py.url import ImageRequest

FORMAT_CLASSES = ("avif", "webp", "jpeg", "default")


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The chosen format class, and whether the response varies with ``Accept``."""

    format_class: str
    varies: bool


def accepted_types(header: str | None) -> dict[str, float]:
    """Media ranges of an ``Accept`` header with their q-values (malformed q counts as 0)."""
    ranges: dict[str, float] = {}
    for item in (header or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        ranges[media] = max(quality, ranges.get(media, 0.0))
    return ranges


def accepts(ranges: dict[str, float], media_type: str) -> bool:
    """Whether ``media_type`` is acceptable: named explicitly with q > 0.

    Wildcards (``*/*``, ``image/*``) do not count: every browser sends them, including the
    ones that cannot decode AVIF, so only an explicit mention is trusted.
    """
    return ranges.get(media_type, 0.0) > 0.0


def negotiate(request: ImageRequest, accept: str | None, config: ImagingConfig) -> Negotiated:
    """The format class for ``request`` under ``Accept: accept``."""
    if "format" in request.filter_names() or request.meta:
        return Negotiated("default", varies=False)
    auto = config.auto_avif or config.auto_webp or config.auto_jpg
    if not auto:
        return Negotiated("default", varies=False)
    ranges = accepted_types(accept)
    if config.auto_avif and accepts(ranges, "image/avif"):
        return Negotiated("avif", varies=True)
    if config.auto_webp and accepts(ranges, "image/webp"):
        return Negotiated("webp", varies=True)
    if config.auto_jpg:
        return Negotiated("jpeg", varies=True)
    return Negotiated("default", varies=True)
