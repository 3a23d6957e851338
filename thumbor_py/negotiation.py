"""Accept negotiation in one place: the output *format class*, decided before any lookup.

The class is part of the result key, so :func:`negotiate` depends only on the URL, the
``Accept`` header and the configuration, never on the source. ``default`` means "the
source's own format, or what the URL's ``format()`` asks for". Once the source is decoded,
the renderer turns the class into a concrete format (:mod:`thumbor_py.imaging.choice`).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import features

from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import formats
from thumbor_py.url import ImageRequest

# On equal q-values the smaller format wins.
_PREFERENCE = {"avif": 2, "webp": 1}


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The chosen format class, and whether the response varies with ``Accept``."""

    format_class: str
    varies: bool


def accepted_types(header: str | None) -> dict[str, float]:
    """Media ranges of an ``Accept`` header with their q-values (malformed q counts as 0).

    No header at all means anything is acceptable (RFC 9110, 12.5.1): ``*/*`` at q=1.
    """
    if header is None or not header.strip():
        return {"*/*": 1.0}
    ranges: dict[str, float] = {}
    for item in header.split(","):
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


def explicit_quality(ranges: dict[str, float], media_type: str) -> float:
    """The q-value of ``media_type`` named explicitly; wildcards do not count.

    Every browser sends ``*/*`` (and often ``image/*``), including those that cannot decode
    AVIF or WebP, so only an explicit mention is trusted for those.
    """
    return ranges.get(media_type, 0.0)


def quality(ranges: dict[str, float], media_type: str) -> float:
    """The q-value of ``media_type`` from its most specific matching range (0 = refused)."""
    major = media_type.split("/", 1)[0]
    for candidate in (media_type, f"{major}/*", "*/*"):
        if candidate in ranges:
            return ranges[candidate]
    return 0.0


def requested_format(request: ImageRequest) -> str | None:
    """The format a valid ``format()`` filter in the URL asks for (it wins over Accept)."""
    for call in request.filters:
        if call.name == "format" and call.args is not None:
            name = call.args.strip().strip("'").lower()
            if name in formats.FORMAT_NAMES:
                return formats.FORMAT_NAMES[name]
    return None


def negotiate(request: ImageRequest, accept: str | None, config: ImagingConfig) -> Negotiated:
    """The format class for ``request`` under ``Accept: accept``."""
    if request.meta or requested_format(request) is not None:
        return Negotiated("default", varies=False)
    if not (config.auto_avif or config.auto_webp or config.auto_jpg):
        return Negotiated("default", varies=False)
    ranges = accepted_types(accept)
    candidates = []
    if config.auto_avif and features.check("avif"):
        candidates.append((explicit_quality(ranges, "image/avif"), _PREFERENCE["avif"], "avif"))
    if config.auto_webp:
        candidates.append((explicit_quality(ranges, "image/webp"), _PREFERENCE["webp"], "webp"))
    best = max(candidates, default=(0.0, 0, "default"))
    if best[0] > 0:
        return Negotiated(best[2], varies=True)
    if config.auto_jpg and quality(ranges, "image/jpeg") > 0:
        return Negotiated("jpeg", varies=True)
    return Negotiated("default", varies=True)


def answer_varies(negotiated: Negotiated, *, animated: bool, config: ImagingConfig) -> bool:
    """Whether the answer carries ``Vary: Accept``: not for an animation that no format class
    converts (as Thumbor, which only varies when the image could become WebP), since its bytes
    are the same whatever ``Accept`` says and the header would only split CDN caches."""
    return negotiated.varies and (config.auto_convert_animated or not animated)
