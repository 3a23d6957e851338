"""The Thumbor URL grammar: parsing, the canonical serialiser, and Thumbor's own regex as oracle."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libthumbor.url import Url

from thumbor_py.errors import UrlParseError
from thumbor_py.url import (
    Crop,
    Dimension,
    FilterCall,
    ImageRequest,
    Trim,
    parse,
    parse_filters,
    serialise,
)

SIG = "_wIUeSaeHw8dricKG2MGhqu5thk="


def req(image: str = "a.jpg", **fields: Any) -> ImageRequest:
    return ImageRequest(image=image, unsafe=True, **fields)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/unsafe/a.jpg", req(), id="image-only"),
        pytest.param("unsafe/a.jpg", req(), id="no-leading-slash"),
        pytest.param(f"/{SIG}/a.jpg", ImageRequest(image="a.jpg", signature=SIG), id="signed"),
        pytest.param("/unsafe/debug/a.jpg", req(debug=True), id="debug"),
        pytest.param("/unsafe/meta/a.jpg", req(meta=True), id="meta"),
        pytest.param("/unsafe/trim/a.jpg", req(trim=Trim()), id="trim"),
        pytest.param("/unsafe/trim:top-left/a.jpg", req(trim=Trim()), id="trim-top-left"),
        pytest.param(
            "/unsafe/trim:bottom-right/a.jpg", req(trim=Trim("bottom-right")), id="trim-br"
        ),
        pytest.param(
            "/unsafe/trim:top-left:50/a.jpg", req(trim=Trim("top-left", 50)), id="trim-tolerance"
        ),
        pytest.param(
            "/unsafe/trim:bottom-right:7/a.jpg",
            req(trim=Trim("bottom-right", 7)),
            id="trim-br-tolerance",
        ),
        # Thumbor splits "trim:10" on ":" and takes "10" as the corner name; its C trim code
        # treats every corner but "top-left" as bottom-right (checked against Thumbor 7.8:
        # trim:10/halo.png is unchanged, like trim:bottom-right/halo.png).
        pytest.param("/unsafe/trim:10/a.jpg", req(trim=Trim("bottom-right", 0)), id="trim-N-quirk"),
        pytest.param("/unsafe/10x20:300x400/a.jpg", req(crop=Crop(10, 20, 300, 400)), id="crop"),
        pytest.param("/unsafe/0x0:0x0/a.jpg", req(), id="crop-0x0-0x0-is-no-crop"),
        pytest.param("/unsafe/0x0:10x0/a.jpg", req(crop=Crop(0, 0, 10, 0)), id="crop-partial-0"),
        pytest.param("/unsafe/fit-in/a.jpg", req(fit_in=True), id="fit-in-no-size"),
        pytest.param(
            "/unsafe/fit-in/300x200/a.jpg", req(fit_in=True, width=300, height=200), id="fit-in"
        ),
        pytest.param(
            "/unsafe/adaptive-fit-in/300x200/a.jpg",
            req(fit_in=True, adaptive=True, width=300, height=200),
            id="adaptive-fit-in",
        ),
        pytest.param(
            "/unsafe/full-fit-in/300x200/a.jpg",
            req(fit_in=True, full=True, width=300, height=200),
            id="full-fit-in",
        ),
        pytest.param(
            "/unsafe/adaptive-full-fit-in/300x200/a.jpg",
            req(fit_in=True, adaptive=True, full=True, width=300, height=200),
            id="adaptive-full-fit-in",
        ),
        pytest.param("/unsafe/300x200/a.jpg", req(width=300, height=200), id="size"),
        pytest.param("/unsafe/300x/a.jpg", req(width=300), id="width-only"),
        pytest.param("/unsafe/x200/a.jpg", req(height=200), id="height-only"),
        pytest.param("/unsafe/300x0/a.jpg", req(width=300), id="height-zero"),
        pytest.param("/unsafe/x/a.jpg", req(), id="bare-x"),
        pytest.param("/unsafe/0x0/a.jpg", req(), id="0x0"),
        pytest.param("/unsafe/origx100/a.jpg", req(width="orig", height=100), id="orig-width"),
        pytest.param("/unsafe/origxorig/a.jpg", req(width="orig", height="orig"), id="orig-both"),
        pytest.param(
            "/unsafe/-300x200/a.jpg",
            req(width=300, height=200, flip_horizontal=True),
            id="flip-horizontal",
        ),
        pytest.param(
            "/unsafe/300x-200/a.jpg",
            req(width=300, height=200, flip_vertical=True),
            id="flip-vertical",
        ),
        pytest.param(
            "/unsafe/-0x-0/a.jpg", req(flip_horizontal=True, flip_vertical=True), id="flip-0x0"
        ),
        pytest.param(
            "/unsafe/-x-/a.jpg", req(flip_horizontal=True, flip_vertical=True), id="flip-bare"
        ),
        pytest.param(
            "/unsafe/-origx-orig/a.jpg",
            req(width="orig", height="orig", flip_horizontal=True, flip_vertical=True),
            id="flip-orig",
        ),
        pytest.param("/unsafe/left/a.jpg", req(halign="left"), id="halign"),
        pytest.param(
            "/unsafe/right/bottom/a.jpg", req(halign="right", valign="bottom"), id="align"
        ),
        pytest.param("/unsafe/center/middle/a.jpg", req(), id="explicit-default-align"),
        pytest.param("/unsafe/top/a.jpg", req(valign="top"), id="valign-only"),
        pytest.param("/unsafe/smart/a.jpg", req(smart=True), id="smart"),
        pytest.param(
            "/unsafe/filters:quality(80)/a.jpg",
            req(filters=(FilterCall("quality", "80"),)),
            id="one-filter",
        ),
        pytest.param(
            "/unsafe/filters:grayscale():quality(50):format(webp)/a.jpg",
            req(
                filters=(
                    FilterCall("grayscale", ""),
                    FilterCall("quality", "50"),
                    FilterCall("format", "webp"),
                )
            ),
            id="filter-chain",
        ),
        pytest.param(
            "/unsafe/debug/meta/trim/10x10:90x90/fit-in/-300x-200/left/top/smart/"
            "filters:blur(2)/a.jpg",
            req(
                debug=True,
                meta=True,
                trim=Trim(),
                crop=Crop(10, 10, 90, 90),
                fit_in=True,
                width=300,
                height=200,
                flip_horizontal=True,
                flip_vertical=True,
                halign="left",
                valign="top",
                smart=True,
                filters=(FilterCall("blur", "2"),),
            ),
            id="every-option",
        ),
    ],
)
def test_parse_reads_each_option(path: str, expected: ImageRequest) -> None:
    assert parse(path) == expected


@pytest.mark.parametrize(
    ("path", "image", "fields"),
    [
        # Options out of Thumbor's order stop the options: the rest is the image.
        pytest.param("/unsafe/smart/300x300/a.jpg", "300x300/a.jpg", {"smart": True}, id="smart"),
        pytest.param("/unsafe/meta/debug/a.jpg", "debug/a.jpg", {"meta": True}, id="meta-debug"),
        pytest.param(
            "/unsafe/fit-in/100x100:400x300/a.jpg",
            "100x100:400x300/a.jpg",
            {"fit_in": True},
            id="crop-after-fit-in",
        ),
        pytest.param("/unsafe/top/left/a.jpg", "left/a.jpg", {"valign": "top"}, id="v-before-h"),
        pytest.param("/unsafe/abcxdef/a.jpg", "abcxdef/a.jpg", {}, id="not-a-size"),
        pytest.param("/unsafe/filters:/a.jpg", "filters:/a.jpg", {}, id="empty-filters"),
        pytest.param(
            "/unsafe/filters:grayscale/a.jpg", "filters:grayscale/a.jpg", {}, id="no-parens"
        ),
        pytest.param("/unsafe/filters:blur(/a.jpg", "filters:blur(/a.jpg", {}, id="unclosed"),
        pytest.param("/unsafe/UNSAFE/a.jpg", "UNSAFE/a.jpg", {}, id="case-sensitive-option"),
        pytest.param("/unsafe/300x200x1/a.jpg", "300x200x1/a.jpg", {}, id="three-dimensions"),
        pytest.param("/unsafe/trim:middle/a.jpg", "trim:middle/a.jpg", {}, id="bad-trim-corner"),
        pytest.param("/unsafe/300X200/a.jpg", "300X200/a.jpg", {}, id="uppercase-x"),
    ],
)
def test_option_out_of_order_becomes_part_of_the_image(
    path: str, image: str, fields: dict[str, Any]
) -> None:
    assert parse(path) == req(image, **fields)


@pytest.mark.parametrize(
    ("path", "image", "fields"),
    [
        # Thumbor's regex needs at least one character of image: the last option is given back.
        pytest.param("/unsafe/300x200/", "300x200/", {}, id="size"),
        pytest.param("/unsafe/300x200/smart/", "smart/", {"width": 300, "height": 200}, id="smart"),
        pytest.param("/unsafe/meta/", "meta/", {}, id="meta"),
        pytest.param("/unsafe/fit-in/left/", "left/", {"fit_in": True}, id="halign"),
        pytest.param("/unsafe/filters:blur(2)/", "filters:blur(2)/", {}, id="filters"),
        pytest.param(
            "/unsafe/smart/filters:blur(2)/", "filters:blur(2)/", {"smart": True}, id="smart-filt"
        ),
    ],
)
def test_last_option_is_given_back_when_no_image_is_left(
    path: str, image: str, fields: dict[str, Any]
) -> None:
    assert parse(path) == req(image, **fields)


@pytest.mark.parametrize(
    ("path", "image", "source"),
    [
        pytest.param(
            "/unsafe/300x200/http%3A%2F%2Fexample.com%2Fa%20b.jpg%3Fx%3D1",
            "http%3A%2F%2Fexample.com%2Fa%20b.jpg%3Fx%3D1",
            "http://example.com/a b.jpg?x=1",
            id="encoded-url",
        ),
        pytest.param(
            "/unsafe/300x200/example.com/a.jpg",
            "example.com/a.jpg",
            "example.com/a.jpg",
            id="host-path",
        ),
        pytest.param(
            "/unsafe/https://example.com/x/a.jpg",
            "https://example.com/x/a.jpg",
            "https://example.com/x/a.jpg",
            id="plain-url-with-slashes",
        ),
        pytest.param("/unsafe/%252e%252e/a.jpg", "%252e%252e/a.jpg", "%2e%2e/a.jpg", id="double"),
        pytest.param("/unsafe/caf%C3%A9.jpg", "caf%C3%A9.jpg", "café.jpg", id="utf8"),
    ],
)
def test_image_stays_encoded_and_source_is_decoded_once(path: str, image: str, source: str) -> None:
    parsed = parse(path)
    assert parsed.image == image
    assert parsed.source == source


@pytest.mark.parametrize(
    ("path", "filters", "image"),
    [
        pytest.param(
            "/unsafe/filters:watermark(http://x.com/w/logo.png,10,10,50)/a.jpg",
            (FilterCall("watermark", "http://x.com/w/logo.png,10,10,50"),),
            "a.jpg",
            id="watermark-url-with-slashes",
        ),
        pytest.param(
            "/unsafe/filters:watermark(wm(1).png,-10,-10,0):quality(80)/http://x.com/a.jpg",
            (FilterCall("watermark", "wm(1).png,-10,-10,0"), FilterCall("quality", "80")),
            "http://x.com/a.jpg",
            id="parentheses-inside",
        ),
        pytest.param(
            "/unsafe/filters:curve([(0,0),(255,255)],[(0,0)])/a.jpg",
            (FilterCall("curve", "[(0,0),(255,255)],[(0,0)]"),),
            "a.jpg",
            id="curve-nested-parentheses",
        ),
        pytest.param(
            "/unsafe/filters:unknown_filter(1):blur(x)/a.jpg",
            (FilterCall("unknown_filter", "1"), FilterCall("blur", "x")),
            "a.jpg",
            id="unknown-kept-for-the-renderer-to-ignore",
        ),
        pytest.param(
            "/unsafe/filters:a(1)/b(2)/c.jpg",
            (FilterCall("a", "1"),),
            "b(2)/c.jpg",
            id="first-close-paren-slash-ends-filters",
        ),
    ],
)
def test_filters_may_hold_slashes_and_parentheses(
    path: str, filters: tuple[FilterCall, ...], image: str
) -> None:
    parsed = parse(path)
    assert parsed.filters == filters
    assert parsed.image == image


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="root"),
        pytest.param("", id="empty"),
        pytest.param("/unsafe", id="unsafe-only"),
        pytest.param("/unsafe/", id="unsafe-no-image"),
        pytest.param("//a.jpg", id="empty-first-segment"),
    ],
)
def test_unparseable_paths_raise_url_parse_error(path: str) -> None:
    with pytest.raises(UrlParseError):
        parse(path)


def test_url_parse_error_is_a_400() -> None:
    assert UrlParseError("x").status == 400


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        pytest.param("a(1)", (FilterCall("a", "1"),), id="one"),
        pytest.param("a()", (FilterCall("a", ""),), id="no-args"),
        pytest.param("a(1):b(x,y)", (FilterCall("a", "1"), FilterCall("b", "x,y")), id="two"),
        pytest.param("a:b(1)", (FilterCall("a:b", "1"),), id="name-with-colon-kept-verbatim"),
    ],
)
def test_parse_filters_splits_like_thumbor(text: str, calls: tuple[FilterCall, ...]) -> None:
    assert parse_filters(text) == calls


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        pytest.param(req(), "/unsafe/a.jpg", id="plain"),
        pytest.param(req(halign="center", valign="middle"), "/unsafe/a.jpg", id="defaults-dropped"),
        pytest.param(req(trim=Trim("top-left", 0)), "/unsafe/trim/a.jpg", id="trim-short"),
        pytest.param(
            req(trim=Trim("bottom-right", 0)), "/unsafe/trim:bottom-right/a.jpg", id="trim-br"
        ),
        pytest.param(req(flip_horizontal=True), "/unsafe/-0x0/a.jpg", id="flip-without-size-kept"),
        pytest.param(
            ImageRequest(image="a.jpg", signature=SIG), f"/{SIG}/a.jpg", id="signature-kept"
        ),
        # Dropping a default that came before an option-looking image would change the image:
        # ".../center/0x0/a" is the image "0x0/a", so the options are closed explicitly.
        pytest.param(req("0x0/a.jpg"), "/unsafe/middle/0x0/a.jpg", id="option-like-image"),
        pytest.param(
            req("left/a.jpg", width=300), "/unsafe/300x0/middle/left/a.jpg", id="halign-like-image"
        ),
        pytest.param(req("smart/", width=300), "/unsafe/300x0/smart/", id="given-back-image"),
    ],
)
def test_serialise_is_canonical(request_: ImageRequest, path: str) -> None:
    assert serialise(request_) == path
    assert parse(path) == request_


# ---------------------------------------------------------------------------------------
# Property-based: round trips, and Thumbor's own regex (from libthumbor) as the oracle.
# ---------------------------------------------------------------------------------------

_SEGMENT_CHARS = st.sampled_from([*"abcxyz019.-_~:,()%@!=+", "%2F", "%20", "%2e"])
_SEGMENT = st.lists(_SEGMENT_CHARS, min_size=1, max_size=8).map("".join)
_IMAGE_TAIL = st.lists(_SEGMENT, max_size=3).map(lambda parts: "".join("/" + p for p in parts))
# The first segment can never look like an option (a name with an extension, or a host).
_IMAGE = st.builds(
    lambda name, ext, tail: f"{name}.{ext}{tail}",
    st.from_regex(r"[a-z][a-z0-9_%]{0,8}", fullmatch=True),
    st.sampled_from(["jpg", "png", "com", "webp"]),
    _IMAGE_TAIL,
)
_DIMENSION: st.SearchStrategy[Dimension] = st.one_of(st.integers(0, 5000), st.just("orig"))
_FILTER = st.builds(
    FilterCall,
    st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True),
    st.text(st.sampled_from(list("0123456789abc,.-/:%'[] ")), max_size=20),
)
_CROP = st.builds(Crop, *(st.integers(0, 4000) for _ in range(4))).filter(
    lambda c: any((c.left, c.top, c.right, c.bottom))
)


@st.composite
def image_requests(draw: st.DrawFn) -> ImageRequest:
    fit_in = draw(st.booleans())
    unsafe = draw(st.booleans())
    signature = None if unsafe else draw(st.from_regex(r"[A-Za-z0-9_-]{27}=", fullmatch=True))
    return ImageRequest(
        image=draw(_IMAGE),
        unsafe=unsafe,
        signature=signature,
        debug=draw(st.booleans()),
        meta=draw(st.booleans()),
        trim=draw(
            st.none()
            | st.builds(Trim, st.sampled_from(["top-left", "bottom-right"]), st.integers(0, 500))
        ),
        crop=draw(st.none() | _CROP),
        fit_in=fit_in,
        adaptive=fit_in and draw(st.booleans()),
        full=fit_in and draw(st.booleans()),
        width=draw(_DIMENSION),
        height=draw(_DIMENSION),
        flip_horizontal=draw(st.booleans()),
        flip_vertical=draw(st.booleans()),
        halign=draw(st.sampled_from(["left", "center", "right"])),
        valign=draw(st.sampled_from(["top", "middle", "bottom"])),
        smart=draw(st.booleans()),
        filters=tuple(draw(st.lists(_FILTER, max_size=3))),
    )


@settings(max_examples=300, deadline=None)
@given(image_requests())
def test_parse_inverts_serialise(request_: ImageRequest) -> None:
    assert parse(serialise(request_)) == request_


_OPTION_SEGMENTS = st.sampled_from(
    [
        "unsafe",
        "debug",
        "meta",
        "trim",
        "trim:10",
        "trim:bottom-right:5",
        "10x10:90x90",
        "0x0:0x0",
        "fit-in",
        "adaptive-full-fit-in",
        "300x200",
        "-0x-0",
        "x",
        "0x0",
        "origx",
        "left",
        "center",
        "right",
        "top",
        "middle",
        "bottom",
        "smart",
        "filters:blur(2)",
        "filters:a(1):b(x/y)",
        "filters:",
        "a.jpg",
        "img",
        "http:",
        "",
        "%2e%2e",
    ]
)
_PATHS = st.builds(
    lambda head, parts, last: "/" + "/".join([head, *parts, last]),
    st.sampled_from(["unsafe", SIG]),
    st.lists(_OPTION_SEGMENTS, max_size=8),
    _OPTION_SEGMENTS,
)


@settings(max_examples=500, deadline=None)
@given(_PATHS)
def test_serialise_of_parse_is_stable(path: str) -> None:
    try:
        first = parse(path)
    except UrlParseError:
        return
    canonical = serialise(first)
    assert parse(canonical) == first
    assert serialise(parse(canonical)) == canonical


# Thumbor 7.8 routes with exactly this regex (thumbor/app.py imports libthumbor.url.Url, the
# same libthumbor 2.0.2 installed here): "/?" + head + options + image. The path after the
# head is matched without the leading "/?".
_THUMBOR_REGEX = re.compile(Url.regex(has_unsafe_or_hash=False).removeprefix("/?"))


def _thumbor_reading(rest: str) -> ImageRequest | None:
    """What Thumbor's URL regex (libthumbor.url.Url) reads from the path after the head."""
    match = _THUMBOR_REGEX.fullmatch(rest)
    if match is None:
        return None
    g = match.groupdict()
    trim = None
    if g["trim"]:
        bits = g["trim"].split(":")  # thumbor.context.RequestParameters
        corner = bits[1] if len(bits) > 1 else "top-left"
        trim = Trim(
            "top-left" if corner == "top-left" else "bottom-right",
            int(bits[2]) if len(bits) > 2 else 0,
        )
    crop = None
    if g["crop_left"] is not None:
        values = [int(g[f"crop_{side}"]) for side in ("left", "top", "right", "bottom")]
        crop = Crop(*values) if any(values) else None

    def dimension(text: str | None) -> int | str:
        return "orig" if text == "orig" else int(text or 0)

    return req(
        g["image"],
        debug=bool(g["debug"]),
        meta=bool(g["meta"]),
        trim=trim,
        crop=crop,
        fit_in=bool(g["fit_in"]),
        adaptive=bool(g["adaptive"]),
        full=bool(g["full"]),
        width=dimension(g["width"]),
        height=dimension(g["height"]),
        flip_horizontal=bool(g["horizontal_flip"]),
        flip_vertical=bool(g["vertical_flip"]),
        halign=g["halign"] or "center",
        valign=g["valign"] or "middle",
        smart=bool(g["smart"]),
        filters=parse_filters(g["filters"]) if g["filters"] else (),
    )


@settings(max_examples=500, deadline=None)
@given(st.lists(_OPTION_SEGMENTS, min_size=1, max_size=9))
def test_parse_agrees_with_thumbors_regex(parts: list[str]) -> None:
    rest = "/".join(parts)
    expected = _thumbor_reading(rest)
    try:
        got = parse("/unsafe/" + rest)
    except UrlParseError:
        assert expected is None
        return
    assert got == expected
