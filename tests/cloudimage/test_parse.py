"""Pure parsing: splitting the origin from the dialect's parameters, and mapping operations
and filters onto the same ``ImageRequest`` (and canonical path) the Thumbor parser produces."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thumbor_py import url
from thumbor_py.cloudimage.origin import split
from thumbor_py.cloudimage.params import build_request
from thumbor_py.errors import UrlParseError


@pytest.mark.parametrize(
    ("path", "query", "origin", "params"),
    [
        pytest.param("/a.jpg", "w=1", "a.jpg", (("w", "1"),), id="relative"),
        pytest.param(
            "/https://b.s3.amazonaws.com/a.jpg",
            "X-Amz-Signature=ab%2Fc&w=640&h=480",
            "https://b.s3.amazonaws.com/a.jpg?X-Amz-Signature=ab%2Fc",
            (("w", "640"), ("h", "480")),
            id="presigned-plus-params",
        ),
        pytest.param("/https:/b.com/a.jpg", "", "https://b.com/a.jpg", (), id="collapsed-slashes"),
        pytest.param(
            "/https%3A%2F%2Fb.com%2Fa.jpg%3Fw%3D5",
            "ci_url_encoded=1&w=9&zz=1",
            "https://b.com/a.jpg?w=5",
            (("ci_url_encoded", "1"), ("w", "9"), ("zz", "1")),
            id="url-encoded",
        ),
        pytest.param(
            "/a.jpg", "v=3&w=1&token=x", "a.jpg?v=3&token=x", (("w", "1"),), id="foreign-order"
        ),
        pytest.param(
            "/https://b.com/a.jpg",
            "w=5&X-Amz-Credential=AK%252F2026%252Fus&X-Amz-Security-Token=a%252Bb%253D&x=%2F",
            "https://b.com/a.jpg?X-Amz-Credential=AK%2F2026%2Fus&X-Amz-Security-Token=a%2Bb%3D&x=%2F",
            (("w", "5"),),
            id="plugin-double-encoded",
        ),
    ],
)
def test_split(path: str, query: str, origin: str, params: tuple[tuple[str, str], ...]) -> None:
    result = split(path, query)
    assert result.origin == origin
    assert result.params == params


def test_signed_text_drops_only_ci_sign() -> None:
    assert split("/a.jpg", "w=1&ci_sign=abc&h=2").signed_text == "/a.jpg?w=1&h=2"
    assert split("/a.jpg", "ci_sign=abc").signed_text == "/a.jpg"


def test_no_origin_is_refused() -> None:
    with pytest.raises(UrlParseError):
        split("/", "w=1")


def _thumbor(path: str) -> url.ImageRequest:
    return dataclasses.replace(url.parse(f"/unsafe/{path}"), unsafe=False)


@pytest.mark.parametrize(
    ("query", "thumbor_path"),
    [
        pytest.param("w=300&h=200", "300x200/a.jpg", id="crop-default"),
        pytest.param("width=300&height=200&func=crop", "300x200/a.jpg", id="crop-long-names"),
        pytest.param("w=300", "300x0/a.jpg", id="width"),
        pytest.param("h=200", "0x200/a.jpg", id="height"),
        pytest.param("w=300&h=200&func=bound", "fit-in/300x200/a.jpg", id="bound"),
        pytest.param("w=300&h=200&func=boundmin", "full-fit-in/300x200/a.jpg", id="boundmin"),
        pytest.param(
            "w=300&h=200&func=cover", "300x200/filters:stretch()/a.jpg", id="cover-stretch"
        ),
        pytest.param("w=300&h=200&func=face", "300x200/smart/a.jpg", id="face"),
        pytest.param("w=300&h=200&gravity=auto", "300x200/smart/a.jpg", id="auto"),
        pytest.param("w=300&h=200&gravity=north", "300x200/top/a.jpg", id="north"),
        pytest.param("w=300&h=200&gravity=southwest", "300x200/left/bottom/a.jpg", id="southwest"),
        pytest.param("w=300&h=200&gravity=center", "300x200/a.jpg", id="center"),
        pytest.param(
            "w=300&h=200&func=fit",
            "fit-in/300x200/filters:ci_fit(ffffff,center-middle)/a.jpg",
            id="fit-white",
        ),
        pytest.param(
            "w=300&h=200&func=fit&bg_colour=000&gravity=east",
            "fit-in/300x200/right/filters:ci_fit(000,right-middle)/a.jpg",
            id="fit-colour-gravity",
        ),
        pytest.param(
            "w=300&h=200&func=fit&fit_enlarge=1",
            "fit-in/300x200/filters:upscale():ci_fit(ffffff,center-middle)/a.jpg",
            id="fit-enlarge",
        ),
        pytest.param(
            "w=300&h=200&func=cropfit&bg_color=auto",
            "300x200/filters:ci_cropfit():ci_fit(auto,center-middle)/a.jpg",
            id="cropfit",
        ),
        pytest.param(
            "w=300&h=200&gravity=30p,60p",
            "300x200/smart/filters:ci_focus(30p,60p)/a.jpg",
            id="focal-percent",
        ),
        pytest.param(
            "w=300&h=200&gravity=0.25c,12.5s",
            "300x200/smart/filters:ci_focus(25p,12.5p)/a.jpg",
            id="focal-fraction-and-resized-percent",
        ),
        pytest.param(
            "w=300&h=200&gravity=120,80",
            "300x200/smart/filters:ci_focus(120,80)/a.jpg",
            id="focal-pixels",
        ),
        pytest.param("tl_px=10,20&br_px=110,220", "10x20:110x220/a.jpg", id="crop-box"),
        pytest.param("flip=h", "-0x0/a.jpg", id="flip-h"),
        pytest.param("w=10&h=10&flip=hv", "-10x-10/a.jpg", id="flip-hv"),
        pytest.param("trim=25", "trim:top-left:25/a.jpg", id="trim"),
        pytest.param("w=100&dpr=2", "200x0/a.jpg", id="dpr"),
        pytest.param("w=100&dpr=9", "400x0/a.jpg", id="dpr-clamped"),
        pytest.param("w=100&org_if_sml=1", "100x0/filters:ci_org_if_sml()/a.jpg", id="org"),
        pytest.param("r=90", "filters:rotate(90)/a.jpg", id="rotate-90"),
        pytest.param("r=45", "filters:ci_rotate(45,ffffff)/a.jpg", id="rotate-45"),
        pytest.param("radius=20", "filters:round_corner(20,255,255,255,true)/a.jpg", id="radius"),
        pytest.param(
            "radius=20&bg_color=ff0000",
            "filters:round_corner(20,255,0,0)/a.jpg",
            id="radius-colour",
        ),
        pytest.param(
            "radius=8&bg_color=navy",
            "filters:round_corner(8,0,0,128)/a.jpg",
            id="radius-colour-name",
        ),
        pytest.param("q=55", "filters:quality(55)/a.jpg", id="quality"),
        pytest.param("force_format=webp", "filters:format(webp)/a.jpg", id="force-format"),
        pytest.param("force_format=jpg", "filters:format(jpeg)/a.jpg", id="force-jpg"),
        pytest.param("sharp=1", "filters:sharpen(1.04,1.0,true)/a.jpg", id="sharp"),
        pytest.param("bright=20", "filters:brightness(20)/a.jpg", id="bright"),
        pytest.param("contrast=-30", "filters:contrast(-30)/a.jpg", id="contrast"),
        pytest.param("saturate=-100", "filters:saturation(0)/a.jpg", id="saturate"),
        pytest.param("grey=1", "filters:grayscale()/a.jpg", id="grey"),
        pytest.param("blur=5", "filters:blur(5)/a.jpg", id="blur"),
        pytest.param("pix=8", "filters:pixelate(8)/a.jpg", id="pixelate"),
        pytest.param("w=abc&h=-5&func=zoom&q=x&foo=1", "a.jpg", id="garbage-ignored"),
    ],
)
def test_operations_map_onto_thumbor_options(query: str, thumbor_path: str) -> None:
    params = dict(split("/a.jpg", query).params)
    request = build_request("a.jpg", params)
    assert request == _thumbor(thumbor_path)
    assert request.path == thumbor_path


_VALUES = {
    "w": st.integers(0, 3000).map(str),
    "h": st.integers(0, 3000).map(str),
    "func": st.sampled_from(["crop", "fit", "cropfit", "bound", "boundmin", "cover", "face"]),
    "gravity": st.sampled_from(["north", "southeast", "auto", "face", "12,34", "50p,10p", "x"]),
    "bg_color": st.sampled_from(["red", "00ff00", "auto"]),
    "flip": st.sampled_from(["h", "v", "hv", ""]),
    "r": st.integers(-400, 400).map(str),
    "trim": st.integers(0, 50).map(str),
    "tl_px": st.sampled_from(["0,0", "10,20", "bad"]),
    "br_px": st.sampled_from(["100,100", "5,5"]),
    "org_if_sml": st.sampled_from(["0", "1"]),
    "q": st.integers(0, 120).map(str),
    "blur": st.integers(0, 200).map(str),
    "pix": st.integers(0, 200).map(str),
    "bright": st.integers(-200, 200).map(str),
    "force_format": st.sampled_from(["webp", "jpg", "nope"]),
    "dpr": st.sampled_from(["1", "2", "0.5", "x"]),
}


@given(st.dictionaries(st.sampled_from(sorted(_VALUES)), st.just("")).flatmap(
    lambda keys: st.fixed_dictionaries({key: _VALUES[key] for key in keys})
))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_every_request_is_a_canonical_thumbor_request(params: dict[str, str]) -> None:
    """Whatever the parameters, the request is one the Thumbor parser reads back unchanged."""
    request = build_request("a.jpg", params)
    assert _thumbor(request.path) == request
