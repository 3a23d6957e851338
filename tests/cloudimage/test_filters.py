"""The filters the Cloudimage dialect adds, checked on pixels through the whole app."""

from __future__ import annotations

import io

from PIL import Image, ImageChops, ImageStat

from tests.cloudimage.conftest import MakeClient, tenants_config

MILUV = {"Host": "media.miluv.app"}
RED = (255, 0, 0)


async def _image(make_client: MakeClient, origin: str, query: str) -> Image.Image:
    client = await make_client(tenants_config(origin))
    response = await client.get(f"/v7/_files_/chelsea.jpg?{query}", headers=MILUV)
    assert response.status == 200, await response.text()
    image = Image.open(io.BytesIO(await response.read()))
    return image.convert("RGB")


def _near(pixel: object, colour: object) -> bool:
    assert isinstance(pixel, tuple)
    assert isinstance(colour, tuple)
    return all(abs(a - b) <= 12 for a, b in zip(pixel, colour, strict=False))


async def test_fit_pads_with_colour_placed_by_gravity(make_client: MakeClient, origin: str) -> None:
    image = await _image(make_client, origin, "w=600&h=400&func=fit&bg_color=red&gravity=west")
    assert image.size == (600, 400)
    assert _near(image.getpixel((590, 200)), RED)  # padding on the east side
    assert not _near(image.getpixel((10, 200)), RED)  # the photo sits west
    assert _near(image.getpixel((300, 5)), RED)  # centred vertically: 50 px bands


async def test_fit_smaller_box_pads_the_short_side(make_client: MakeClient, origin: str) -> None:
    image = await _image(make_client, origin, "w=200&h=200&func=fit&bg_color=ff0000")
    assert image.size == (200, 200)
    assert _near(image.getpixel((100, 3)), RED)
    assert not _near(image.getpixel((100, 100)), RED)


async def test_cropfit_crops_large_sources_and_fits_small_ones(
    make_client: MakeClient, origin: str
) -> None:
    cropped = await _image(make_client, origin, "w=200&h=100&func=cropfit&bg_color=red")
    assert cropped.size == (200, 100)
    assert not any(_near(cropped.getpixel(p), RED) for p in [(1, 1), (198, 98), (100, 1)])
    fitted = await _image(make_client, origin, "w=600&h=400&func=cropfit&bg_color=red")
    assert fitted.size == (600, 400)
    assert _near(fitted.getpixel((5, 200)), RED)


async def test_focal_point_steers_the_crop(make_client: MakeClient, origin: str) -> None:
    left = await _image(make_client, origin, "w=100&h=300&gravity=0p,50p")
    west = await _image(make_client, origin, "w=100&h=300&gravity=west")
    right = await _image(make_client, origin, "w=100&h=300&gravity=100p,50p")
    assert _difference(left, west) < 3
    assert _difference(left, right) > 10


def _difference(first: Image.Image, second: Image.Image) -> float:
    diff = ImageChops.difference(first, second).convert("L")
    return float(ImageStat.Stat(diff).mean[0])


async def test_pixelate_makes_blocks(make_client: MakeClient, origin: str) -> None:
    image = await _image(make_client, origin, "w=200&h=100&pix=10&q=100")
    assert _near(image.getpixel((0, 0)), image.getpixel((9, 9)))
    smooth = await _image(make_client, origin, "w=200&h=100&q=100")
    assert _difference(image, smooth) > 1


async def test_free_rotation_grows_the_canvas(make_client: MakeClient, origin: str) -> None:
    image = await _image(make_client, origin, "w=100&h=100&r=45&bg_color=red")
    assert image.size[0] > 130
    assert _near(image.getpixel((1, 1)), RED)
