"""``thumbor_py.srcset``: signed candidates the server accepts, and the Jinja2 filter."""

from __future__ import annotations

from typing import Any

import pytest

import thumbor_py
from tests.cloudimage.conftest import SAMPLES, size_of
from thumbor_py import url
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.signing import is_valid


def test_srcset_builds_signed_sorted_candidates() -> None:
    text = thumbor_py.srcset("photos/a b.jpg", [640, 320, 320], key="k", aspect_ratio=16 / 9)
    candidates = [item.rsplit(" ", 1) for item in text.split(", ")]
    assert [descriptor for _, descriptor in candidates] == ["320w", "640w"]
    for path, descriptor in candidates:
        parsed = url.parse(path)
        width = int(descriptor[:-1])
        assert (parsed.width, parsed.height) == (width, -(-width * 9 // 16))
        assert parsed.image == "photos/a%20b.jpg"
        assert is_valid("k", parsed.signature or "", url.split_signed_path(path)[1])


def test_srcset_options_and_base_url() -> None:
    text = thumbor_py.srcset(
        "a.jpg", [100], key=None, base_url="https://media.miluv.app/", fit_in=True,
        filters=["quality(70)"],
    )  # fmt: skip
    assert text == "https://media.miluv.app/unsafe/fit-in/100x0/filters:quality(70)/a.jpg 100w"


@pytest.mark.parametrize("widths", [[], [0, -5]])
def test_srcset_refuses_no_widths(widths: list[int]) -> None:
    with pytest.raises(ValueError, match="at least one width"):
        thumbor_py.srcset("a.jpg", widths, key=None)


async def test_every_candidate_is_served_at_its_width(aiohttp_client: Any) -> None:
    config = Config.from_mapping(
        {"security": {"key": "k"}, "loader": {"use": "file", "settings": {"root": str(SAMPLES)}}},
        env={},
    )
    client = await aiohttp_client(create_app(config))
    for candidate in thumbor_py.srcset("chelsea.jpg", [80, 160], key="k").split(", "):
        path, descriptor = candidate.split(" ")
        response = await client.get(path)
        assert response.status == 200, await response.text()
        assert size_of(await response.read())[0] == int(descriptor[:-1])


def test_jinja_filter() -> None:
    jinja2 = pytest.importorskip("jinja2")
    environment = jinja2.Environment(autoescape=True)
    assert thumbor_py.register_jinja(environment, key="k", base_url="https://cdn.example")
    template = environment.from_string(
        '<img src="{{ src }}" srcset="{{ src | thumbor_srcset([320, 640]) }}" '
        'sizes="(max-width: 600px) 100vw, 50vw">'
    )
    html = template.render(src="a.jpg")
    assert "https://cdn.example/" in html
    assert "/320x0/a.jpg 320w, https://cdn.example/" in html
    assert '/640x0/a.jpg 640w"' in html
