"""Accept negotiation: real browsers' headers x configuration -> format class and Vary."""

from __future__ import annotations

import pytest

from thumbor_py.config import ImagingConfig
from thumbor_py.negotiation import accepted_types, negotiate, quality
from thumbor_py.url import parse

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_16 = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"  # noqa: E501 - a real header
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
OLD_FIREFOX = "image/webp,*/*"
CURL = "*/*"
HEALTH_CHECK = None  # a CDN health checker sends no Accept at all
NO_WEBP = "image/avif;q=0,image/webp;q=0,*/*"

AVIF_WEBP = ImagingConfig(auto_avif=True, auto_webp=True)
WEBP = ImagingConfig(auto_webp=True)
WEBP_JPG = ImagingConfig(auto_webp=True, auto_jpg=True)
OFF = ImagingConfig()


@pytest.mark.parametrize(
    ("accept", "config", "format_class", "varies"),
    [
        pytest.param(CHROME, AVIF_WEBP, "avif", True, id="chrome-avif"),
        pytest.param(CHROME, WEBP, "webp", True, id="chrome-webp-only"),
        pytest.param(SAFARI_16, AVIF_WEBP, "avif", True, id="safari16-avif"),
        pytest.param(SAFARI_16, WEBP, "webp", True, id="safari16-webp"),
        pytest.param(FIREFOX, AVIF_WEBP, "avif", True, id="firefox"),
        pytest.param(OLD_FIREFOX, AVIF_WEBP, "webp", True, id="old-firefox-no-avif"),
        pytest.param(CURL, AVIF_WEBP, "default", True, id="curl-wildcard-is-not-webp"),
        pytest.param(CURL, WEBP_JPG, "jpeg", True, id="curl-auto-jpg"),
        pytest.param(HEALTH_CHECK, AVIF_WEBP, "default", True, id="health-check"),
        pytest.param(HEALTH_CHECK, WEBP_JPG, "jpeg", True, id="health-check-auto-jpg"),
        pytest.param(NO_WEBP, AVIF_WEBP, "default", True, id="q0-means-no"),
        pytest.param("image/webp;q=0.9,image/avif;q=0.5", AVIF_WEBP, "webp", True, id="q-order"),
        pytest.param("image/webp;q=bogus", WEBP, "default", True, id="malformed-q"),
        pytest.param(CHROME, OFF, "default", False, id="chrome-off"),
        pytest.param(CURL, OFF, "default", False, id="curl-off"),
        pytest.param(HEALTH_CHECK, OFF, "default", False, id="health-check-off"),
    ],
)
def test_browsers_by_config(
    accept: str | None, config: ImagingConfig, format_class: str, varies: bool
) -> None:
    negotiated = negotiate(parse("/unsafe/300x200/a.jpg"), accept, config)
    assert (negotiated.format_class, negotiated.varies) == (format_class, varies)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/unsafe/filters:format(png)/a.jpg", id="format-wins"),
        pytest.param("/unsafe/filters:format('jpeg')/a.jpg", id="format-quoted"),
        pytest.param("/unsafe/meta/a.jpg", id="meta"),
    ],
)
def test_format_filter_and_meta_are_never_negotiated(path: str) -> None:
    assert negotiate(parse(path), CHROME, AVIF_WEBP) == negotiate(parse(path), CURL, AVIF_WEBP)
    assert not negotiate(parse(path), CHROME, AVIF_WEBP).varies


def test_an_unknown_format_filter_does_not_stop_negotiation() -> None:
    negotiated = negotiate(parse("/unsafe/filters:format(bogus)/a.jpg"), CHROME, AVIF_WEBP)
    assert negotiated.format_class == "avif"


@pytest.mark.parametrize(
    ("header", "media_type", "q"),
    [
        pytest.param("image/*;q=0.8,*/*;q=0.5", "image/jpeg", 0.8, id="type-wildcard"),
        pytest.param("image/jpeg;q=0,*/*", "image/jpeg", 0.0, id="explicit-refusal"),
        pytest.param("text/html", "image/jpeg", 0.0, id="not-accepted"),
        pytest.param(None, "image/jpeg", 1.0, id="no-header"),
        pytest.param("IMAGE/WEBP; Q=0.7", "image/webp", 0.7, id="case"),
        pytest.param("image/webp;q=7", "image/webp", 1.0, id="q-clamped"),
    ],
)
def test_media_range_quality(header: str | None, media_type: str, q: float) -> None:
    assert quality(accepted_types(header), media_type) == q
