"""The URL builder: libthumbor's URLs for the same options, and encoded images that round-trip."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from libthumbor import CryptoURL

import thumbor_py
from thumbor_py import signing
from thumbor_py.builder import build_url
from thumbor_py.url import parse

KEY = "my-security-key"

# (build_url keyword arguments, the same request in libthumbor's vocabulary)
EQUIVALENT_OPTIONS = [
    pytest.param({}, {}, id="plain"),
    pytest.param({"width": 300, "height": 200}, {"width": 300, "height": 200}, id="size"),
    pytest.param({"width": 300}, {"width": 300}, id="width-only"),
    pytest.param({"height": 200}, {"height": 200}, id="height-only"),
    pytest.param(
        {"width": 300, "height": 200, "smart": True},
        {"width": 300, "height": 200, "smart": True},
        id="smart",
    ),
    pytest.param(
        {"width": 300, "height": 200, "fit_in": True},
        {"width": 300, "height": 200, "fit_in": True},
        id="fit-in",
    ),
    pytest.param(
        {"width": 300, "height": 200, "adaptive": True},
        {"width": 300, "height": 200, "adaptive_fit_in": True},
        id="adaptive-fit-in",
    ),
    pytest.param(
        {"width": 300, "height": 200, "full": True},
        {"width": 300, "height": 200, "full_fit_in": True},
        id="full-fit-in",
    ),
    pytest.param(
        {"width": 300, "height": 200, "adaptive": True, "full": True},
        {"width": 300, "height": 200, "adaptive_full_fit_in": True},
        id="adaptive-full-fit-in",
    ),
    pytest.param(
        {"width": 300, "height": 200, "flip_horizontal": True, "flip_vertical": True},
        {"width": 300, "height": 200, "flip": True, "flop": True},
        id="flips",
    ),
    pytest.param({"flip_horizontal": True}, {"flip": True}, id="flip-no-size"),
    pytest.param(
        {"flip_horizontal": True, "flip_vertical": True},
        {"flip": True, "flop": True},
        id="flip-flop-no-size",
    ),
    pytest.param(
        {"width": 100, "height": 100, "halign": "left", "valign": "top"},
        {"width": 100, "height": 100, "halign": "left", "valign": "top"},
        id="align",
    ),
    pytest.param(
        {"halign": "right", "valign": "bottom"},
        {"halign": "right", "valign": "bottom"},
        id="align-no-size",
    ),
    pytest.param({"crop": (10, 20, 300, 400)}, {"crop": ((10, 20), (300, 400))}, id="crop"),
    pytest.param({"crop": (0, 0, 0, 0)}, {"crop": ((0, 0), (0, 0))}, id="empty-crop-dropped"),
    pytest.param({"trim": True}, {"trim": True}, id="trim"),
    pytest.param(
        {"trim": "bottom-right", "trim_tolerance": 5},
        {"trim": ("bottom-right", 5)},
        id="trim-corner-tolerance",
    ),
    pytest.param({"meta": True, "width": 10}, {"meta": True, "width": 10}, id="meta"),
    pytest.param(
        {"filters": ["quality(80)", "format(webp)"]},
        {"filters": ["quality(80)", "format(webp)"]},
        id="filters-list",
    ),
    pytest.param(
        {"filters": "quality(80):grayscale()"},
        {"filters": ["quality(80)", "grayscale()"]},
        id="filters-text",
    ),
    pytest.param(
        {"filters": ["watermark(http://x.com/w.png,10,10,50)"]},
        {"filters": ["watermark(http://x.com/w.png,10,10,50)"]},
        id="watermark-url",
    ),
    pytest.param(
        {
            "width": 300,
            "height": 200,
            "fit_in": True,
            "flip_horizontal": True,
            "halign": "left",
            "valign": "top",
            "smart": True,
            "crop": (1, 2, 3, 4),
            "trim": True,
            "meta": True,
            "filters": ["blur(2)"],
        },
        {
            "width": 300,
            "height": 200,
            "fit_in": True,
            "flip": True,
            "halign": "left",
            "valign": "top",
            "smart": True,
            "crop": ((1, 2), (3, 4)),
            "trim": True,
            "meta": True,
            "filters": ["blur(2)"],
        },
        id="everything",
    ),
]


def _same_request(ours: str, theirs: str) -> None:
    """Both paths mean the same request (libthumbor writes some defaults out differently)."""
    a, b = parse(ours), parse(theirs)
    assert dataclasses.replace(a, signature=None) == dataclasses.replace(b, signature=None)


@pytest.mark.parametrize(("ours", "theirs"), EQUIVALENT_OPTIONS)
@pytest.mark.parametrize(
    "image",
    [
        pytest.param("image.jpg", id="file"),
        pytest.param("my.server.com/some/path/to/image.jpg", id="host-path"),
        pytest.param("http://example.com/a/b.jpg", id="url"),
    ],
)
def test_matches_libthumbor(ours: dict[str, Any], theirs: dict[str, Any], image: str) -> None:
    signed = build_url(image, key=KEY, **ours)
    expected = CryptoURL(key=KEY).generate(image_url=image, **theirs)
    _same_request(signed, expected)
    if parse(signed).path == parse(expected).path:
        assert signed == expected  # same text, same signature
    unsafe = build_url(image, **ours)
    assert unsafe.startswith("/unsafe/")
    _same_request(unsafe, "/" + CryptoURL(key=KEY).generate(image_url=image, unsafe=True, **theirs))


def test_issue_vector() -> None:
    assert (
        build_url("my.server.com/some/path/to/image.jpg", key=KEY, width=300, height=200)
        == "/8ammJH8D-7tXy6kU3lTvoXlhu4o=/300x200/my.server.com/some/path/to/image.jpg"
    )


@pytest.mark.parametrize(
    ("image", "encoded"),
    [
        pytest.param("a b.jpg", "a%20b.jpg", id="space"),
        pytest.param("a?b.jpg", "a%3Fb.jpg", id="question-mark"),
        pytest.param("a#b.jpg", "a%23b.jpg", id="hash"),
        pytest.param("100%.jpg", "100%25.jpg", id="percent"),
        pytest.param("café.jpg", "caf%C3%A9.jpg", id="non-ascii"),
        pytest.param("http://x.com/a.jpg?w=1&h=2", "http://x.com/a.jpg%3Fw=1&h=2", id="query"),
        pytest.param("a(1),b.jpg", "a(1),b.jpg", id="sub-delims-kept"),
    ],
)
def test_image_is_percent_encoded_where_a_url_needs_it(image: str, encoded: str) -> None:
    url = build_url(image, width=10)
    assert url == f"/unsafe/10x0/{encoded}"
    assert parse(url).source == image


@example(image="/a.jpg", width=0, smart=False)
@example(image="//x", width=0, smart=False)
@example(image="/", width=10, smart=True)
@given(
    image=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40),
    width=st.integers(0, 2000),
    smart=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_built_urls_parse_back_to_the_image(image: str, width: int, smart: bool) -> None:
    # An image whose first segment is "smart" or a filters option cannot be written in
    # Thumbor's grammar at all; everything else must come back intact.
    first = image.split("/", 1)[0]
    assume(first != "smart" and not first.startswith("filters:"))
    url = build_url(image, key=KEY, width=width, smart=smart)
    parsed = parse(url)
    assert parsed.source == image
    assert parsed.width == width
    assert parsed.smart == smart
    signing.verify(parsed, url, keys=(KEY,), allow_unsafe=False)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param("300x200/a.jpg", id="size-like"),
        pytest.param("left/a.jpg", id="halign-like"),
        pytest.param("fit-in/a.jpg", id="fit-in-like"),
        pytest.param("meta/a.jpg", id="meta-like"),
    ],
)
def test_option_like_images_keep_their_meaning(image: str) -> None:
    assert parse(build_url(image)).source == image
    assert parse(build_url(image, width=10)).source == image


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"width": -1}, "negative", id="negative-width"),
        pytest.param({"height": -5}, "negative", id="negative-height"),
        pytest.param({"width": "wide"}, "invalid literal", id="not-a-number"),
    ],
)
def test_invalid_sizes_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_url("a.jpg", **kwargs)


def test_orig_and_numeric_strings_are_accepted() -> None:
    assert build_url("a.jpg", width="orig", height="200") == "/unsafe/origx200/a.jpg"


def test_builder_is_public() -> None:
    assert thumbor_py.build_url is build_url
    assert "build_url" in thumbor_py.__all__
