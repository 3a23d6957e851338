"""Formats in and out through the renderer: modes, ICC, EXIF, lossless WebP, max_bytes."""

from __future__ import annotations

import dataclasses
import io

import pillow_heif
import pytest
from PIL import Image, ImageCms

from tests.imaging.helpers import pixel
from thumbor_py.assembly import build_renderer
from thumbor_py.config import ImagingConfig
from thumbor_py.imaging import formats
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.output import Rendered
from thumbor_py.url import parse

REGISTRY = build_registry()


def render(data: bytes, path: str, format_class: str = "default", **config: object) -> Rendered:
    renderer = build_renderer(ImagingConfig(**config))  # type: ignore[arg-type]
    return renderer.render(PixelSource("test", data), parse(f"/unsafe/{path}"), format_class)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def decode(rendered: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(rendered.data))
    image.load()
    return image


def quadrants(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return image.convert(mode)


def heic(image: Image.Image) -> bytes:
    heif = pillow_heif.from_pillow(image)
    buffer = io.BytesIO()
    heif.save(buffer, quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "fmt", "mode"),
    [
        pytest.param(lambda: heic(quadrants()), "JPEG", "RGB", id="heic-to-jpeg"),
        pytest.param(lambda: encode(quadrants(), "TIFF"), "JPEG", "RGB", id="tiff-to-jpeg"),
        pytest.param(lambda: encode(quadrants("RGBA"), "TIFF"), "PNG", "RGBA", id="tiff-alpha"),
        pytest.param(lambda: encode(quadrants(), "BMP"), "JPEG", "RGB", id="bmp-to-jpeg"),
        pytest.param(lambda: encode(quadrants(), "WEBP"), "WEBP", "RGB", id="webp"),
        pytest.param(lambda: encode(quadrants(), "AVIF"), "AVIF", "RGB", id="avif"),
        pytest.param(lambda: encode(quadrants(), "GIF"), "GIF", "P", id="gif"),
    ],
)
def test_formats_in(data: object, fmt: str, mode: str) -> None:
    rendered = render(data(), "32x24/x")  # type: ignore[operator]
    image = decode(rendered)
    assert (image.format, image.mode, image.size) == (fmt, mode, (32, 24))
    red = pixel(image.convert("RGB"), (4, 12))
    assert red[0] > 200
    assert red[2] < 60


@pytest.mark.parametrize(
    ("name", "fmt", "content_type"),
    [
        pytest.param("jpeg", "JPEG", "image/jpeg", id="jpeg"),
        pytest.param("png", "PNG", "image/png", id="png"),
        pytest.param("webp", "WEBP", "image/webp", id="webp"),
        pytest.param("avif", "AVIF", "image/avif", id="avif"),
        pytest.param("gif", "GIF", "image/gif", id="gif"),
        pytest.param("heic", "HEIF", "image/heif", id="heic"),
    ],
)
def test_formats_out(name: str, fmt: str, content_type: str) -> None:
    rendered = render(encode(quadrants(), "PNG"), f"filters:format({name})/x")
    assert rendered.content_type == content_type
    assert decode(rendered).format == fmt


def test_webp_quality_100_is_lossless() -> None:
    source = quadrants()
    source.putpixel((3, 3), (12, 34, 56))
    rendered = render(encode(source, "PNG"), "filters:format(webp):quality(100)/x")
    assert decode(rendered).convert("RGB").tobytes() == source.tobytes()


def test_avif_speed_is_configurable() -> None:
    slow = render(encode(quadrants(), "PNG"), "filters:format(avif)/x", avif_speed=10)
    assert decode(slow).format == "AVIF"


def test_cmyk_jpeg_comes_out_rgb_without_its_cmyk_profile() -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # red in CMYK
    rendered = render(encode(cmyk, "JPEG"), "20x15/x")
    image = decode(rendered)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((10, 7))  # type: ignore[misc]
    assert red > 200
    assert green < 60
    assert blue < 60
    assert not image.info.get("icc_profile")


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (20, 10), 32768)
    rendered = render(encode(grey, "PNG"), "x")
    image = decode(rendered)
    assert image.mode == "L"
    assert image.getpixel((5, 5)) == 128


def test_palette_png_with_transparency_stays_indexed() -> None:
    image = Image.new("P", (20, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    image.paste(0, (0, 0, 10, 10))
    image.info["transparency"] = 0
    rendered = decode(render(encode(image, "PNG", transparency=0), "x"))
    assert rendered.mode == "P"
    rgba = rendered.convert("RGBA")
    assert pixel(rgba, (2, 2))[3] == 0
    assert rgba.getpixel((15, 5)) == (255, 0, 0, 255)
    resized = decode(render(encode(image, "PNG", transparency=0), "10x5/x"))
    assert resized.mode == "P"
    assert pixel(resized.convert("RGBA"), (1, 1))[3] == 0


def test_grey_with_alpha_stays_la() -> None:
    image = Image.new("LA", (20, 10), (90, 255))
    image.paste((90, 0), (0, 0, 10, 10))
    result = decode(render(encode(image, "PNG"), "x"))
    assert result.mode == "LA"
    assert pixel(result, (2, 2))[1] == 0
    assert result.getpixel((15, 5)) == (90, 255)


def _icc() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return profile.tobytes()


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_icc_is_kept_unless_stripped(fmt: str) -> None:
    source = encode(quadrants(), "JPEG", icc_profile=_icc())
    assert decode(render(source, f"filters:format({fmt})/x")).info.get("icc_profile")
    stripped = render(source, f"filters:format({fmt}):strip_icc()/x")
    assert not decode(stripped).info.get("icc_profile")


def test_exif_is_stripped_unless_configured() -> None:
    exif = Image.Exif()
    exif[0x010F] = "ACME camera"
    exif[0x0112] = 6
    source = encode(quadrants(), "JPEG", exif=exif.tobytes())
    stripped = decode(render(source, "x"))
    assert not stripped.getexif()
    assert stripped.size == (48, 64)  # upright
    kept = decode(render(source, "x", preserve_exif=True)).getexif()
    assert kept[0x010F] == "ACME camera"
    assert 0x0112 not in kept
    assert not decode(render(source, "filters:strip_exif()/x", preserve_exif=True)).getexif()


def test_max_bytes_finds_the_highest_quality_that_fits() -> None:
    photo = Image.effect_noise((200, 150), 40).convert("RGB")
    source = encode(photo, "JPEG", quality=95)
    full = len(render(source, "x").data)
    budget = full // 2
    fitted = render(source, f"filters:max_bytes({budget})/x")
    assert len(fitted.data) <= budget
    sizes = {q: len(render(source, f"filters:quality({q})/x").data) for q in range(1, 81)}
    best = max(q for q, size in sizes.items() if size <= budget)
    assert len(fitted.data) == sizes[best]
    impossible = render(source, "filters:max_bytes(10)/x")
    assert impossible.data == render(source, "x").data


def test_auto_png_to_jpg_only_for_opaque_pngs() -> None:
    opaque = encode(quadrants(), "PNG")
    assert render(opaque, "x", auto_png_to_jpg=True).content_type == "image/jpeg"
    assert render(opaque, "filters:autojpg()/x").content_type == "image/jpeg"
    assert render(opaque, "filters:autojpg(false)/x", auto_png_to_jpg=True).content_type == (
        "image/png"
    )
    clear = encode(quadrants("RGBA").copy(), "PNG")
    see_through = Image.open(io.BytesIO(clear)).copy()
    see_through.putpixel((0, 0), (0, 0, 0, 0))
    assert render(encode(see_through, "PNG"), "x", auto_png_to_jpg=True).content_type == (
        "image/png"
    )


@pytest.mark.parametrize(
    ("format_class", "content_type"),
    [
        pytest.param("webp", "image/webp", id="webp"),
        pytest.param("avif", "image/avif", id="avif"),
        pytest.param("jpeg", "image/jpeg", id="jpeg"),
        pytest.param("default", "image/png", id="default"),
    ],
)
def test_the_renderer_applies_the_format_class(format_class: str, content_type: str) -> None:
    rendered = render(encode(quadrants(), "PNG"), "x", format_class)
    assert rendered.content_type == content_type


def test_a_transparent_image_is_never_made_jpeg_by_negotiation() -> None:
    image = quadrants("RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))
    assert render(encode(image, "PNG"), "x", "jpeg").content_type == "image/png"


def test_the_format_filter_wins_over_the_class() -> None:
    assert render(encode(quadrants(), "PNG"), "filters:format(gif)/x", "webp").content_type == (
        "image/gif"
    )


def test_config_dataclass_has_the_new_fields() -> None:
    names = {field.name for field in dataclasses.fields(ImagingConfig)}
    assert {"max_frames", "avif_speed", "strict_filters", "filter_plugins"} <= names


@pytest.mark.parametrize(
    ("fmt", "name", "normal", "fast"),
    [
        pytest.param("WEBP", "method", 4, 0, id="webp"),
        pytest.param("PNG", "compress_level", 6, 1, id="png"),
    ],
)
def test_large_outputs_encode_at_the_fast_setting(
    monkeypatch: pytest.MonkeyPatch, fmt: str, name: str, normal: int, fast: int
) -> None:
    # One encode call cannot stop at a deadline: over 4 MP, encoders take their fast setting.
    seen: list[object] = []
    save = Image.Image.save

    def spy(image: Image.Image, fp: object, format: str | None = None, **params: object) -> None:
        seen.append(params.get(name))
        save(image, fp, format, **params)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", spy)
    options = formats.EncodeOptions(format=fmt, quality=80)
    formats.encode(Image.new("RGB", (2000, 2000), "red"), options)
    formats.encode(Image.new("RGB", (2001, 2000), "red"), options)
    assert seen == [normal, fast]
