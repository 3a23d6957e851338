"""Absurd filter arguments get an image or a 400, never a 500 or a runaway allocation."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.imaging.filters import POSITIVE_NUMBER, FilterContext, image_filter


@image_filter(POSITIVE_NUMBER)
def explode(image: Image.Image, ctx: FilterContext, value: int) -> Image.Image:
    """A plugin filter that fails on any argument, as a buggy or hostile one might."""
    raise ValueError(f"cannot explode by {value}")


def config() -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "imaging": {
                "detectors": [],
                "filter_plugins": [f"{__name__}:explode"],
            },
        },
        env={},
    )


@pytest.mark.parametrize(
    ("filters", "size"),
    [
        pytest.param("noise(99999)", (300, 200), id="noise-over-int16"),
        pytest.param("noise(99999,7)", (300, 200), id="noise-seeded"),
        pytest.param(
            "watermark(chelsea.jpg,0,0,50,99999,99999)", (300, 200), id="watermark-huge-ratio"
        ),
        pytest.param("blur(0,99999)", (300, 200), id="blur-huge-sigma"),
        pytest.param("round_corner(99999|99999,0,0,0)", (300, 200), id="round-corner-huge"),
        pytest.param("sharpen(99999,99999,true)", (300, 200), id="sharpen-huge"),
        pytest.param("proportion(99999)", (300, 200), id="proportion-huge"),
    ],
)
async def test_absurd_arguments_still_render(
    aiohttp_client: Any, filters: str, size: tuple[int, int]
) -> None:
    client = await aiohttp_client(create_app(config()))
    response = await client.get(f"/unsafe/300x200/filters:{filters}/coffee.jpg")
    assert response.status == 200, await response.text()
    assert Image.open(io.BytesIO(await response.read())).size == size


async def test_a_failing_filter_is_a_400_naming_it(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(config()))
    response = await client.get("/unsafe/100x100/filters:explode(3)/coffee.jpg")
    assert response.status == 400
    assert await response.text() == "filter explode() cannot apply these arguments"
