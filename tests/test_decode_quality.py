"""Decoding only what is needed: JPEG drafting on every path whose output is smaller, and
outputs that stay within 38 dB PSNR of rendering from a full decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLES
from thumbor_py import url
from thumbor_py.assembly import build_renderer
from thumbor_py.config import Config
from thumbor_py.imaging import formats, job
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.transform import Renderer

MIN_PSNR = 38.0


def psnr(first: bytes, second: bytes) -> float:
    """PSNR of two encoded images as seen on white (hidden colour under alpha ignored)."""

    def pixels(data: bytes) -> np.ndarray:
        image = Image.open(io.BytesIO(data))
        image.seek(0)
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return np.asarray(white.convert("RGB"), dtype=np.float64)

    a, b = pixels(first), pixels(second)
    assert a.shape == b.shape
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


def phone_jpeg(size: tuple[int, int] = (2400, 1800), orientation: int = 1) -> bytes:
    """A photo upscaled with Lanczos plus sensor-like noise, at quality 90."""
    rng = np.random.default_rng(7)
    photo = Image.open(SAMPLES / "rocket.jpg").convert("RGB").resize(size, Image.Resampling.LANCZOS)
    noisy = np.asarray(photo, dtype=np.int16) + rng.normal(0, 4, (size[1], size[0], 1)).astype(
        np.int16
    )
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture(scope="module")
def large() -> bytes:
    return phone_jpeg()


@pytest.fixture
def renderer() -> Renderer:
    config = Config.from_mapping({"security": {"allow_unsafe": True}, "imaging": {"detectors": []}})
    return build_renderer(config.imaging)


@pytest.fixture
def drafts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int] | None]:
    """Every draft size asked of the JPEG decoder."""
    seen: list[tuple[int, int] | None] = []
    original = formats.load_pixels

    def spy(opened: formats.Opened, draft: tuple[int, int] | None) -> Image.Image:
        seen.append(draft)
        return original(opened, draft)

    monkeypatch.setattr(formats, "load_pixels", spy)
    monkeypatch.setattr(job.decode, "__defaults__", (spy,))
    return seen


def full_decode(
    renderer: Renderer, data: bytes, path: str, monkeypatch: pytest.MonkeyPatch
) -> bytes:
    with monkeypatch.context() as patch:
        patch.setattr(job, "draft_size", lambda *_: None)
        return renderer.render(PixelSource("test", data), url.parse(path)).data


# PNG output: PSNR then measures the decode and resize, not two lossy encoders' noise.
SMALLER = [
    pytest.param("/unsafe/300x200/filters:format(png)/x.jpg", id="crop"),
    pytest.param("/unsafe/100x100:1300x1000/200x0/filters:format(png)/x.jpg", id="manual-crop"),
    pytest.param("/unsafe/fit-in/500x500/filters:format(png)/x.jpg", id="fit-in"),
    pytest.param("/unsafe/full-fit-in/400x100/filters:format(png)/x.jpg", id="full-fit-in"),
    pytest.param("/unsafe/300x300/smart/filters:format(png)/x.jpg", id="smart-no-detectors"),
    pytest.param("/unsafe/-320x0/filters:format(png)/x.jpg", id="flipped"),
    pytest.param("/unsafe/250x250/filters:fill(white):format(png)/x.jpg", id="fill"),
]


@pytest.mark.parametrize("path", SMALLER)
def test_smaller_outputs_are_drafted_and_match_a_full_decode(
    renderer: Renderer,
    large: bytes,
    path: str,
    drafts: list[tuple[int, int] | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drafted = renderer.render(PixelSource("test", large), url.parse(path))
    assert drafts, "nothing was decoded"
    assert drafts[0] is not None, "the decoder was not asked for fewer pixels"
    reference = full_decode(renderer, large, path, monkeypatch)
    assert psnr(drafted.data, reference) >= MIN_PSNR


def test_max_size_normalisation_is_drafted(
    large: bytes, drafts: list[tuple[int, int] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.from_mapping(
        {"security": {"allow_unsafe": True}, "imaging": {"max_width": 500, "detectors": []}}
    )
    renderer = build_renderer(config.imaging)
    path = "/unsafe/filters:format(png)/x.jpg"
    drafted = renderer.render(PixelSource("test", large), url.parse(path))
    assert drafts[0] is not None
    assert psnr(drafted.data, full_decode(renderer, large, path, monkeypatch)) >= MIN_PSNR


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/unsafe/x.jpg", id="original"),
        pytest.param("/unsafe/1500x0/x.jpg", id="over-half"),
        pytest.param("/unsafe/trim/300x0/x.jpg", id="trim-needs-every-pixel"),
    ],
)
def test_outputs_needing_every_pixel_are_not_drafted(
    renderer: Renderer, large: bytes, path: str, drafts: list[tuple[int, int] | None]
) -> None:
    renderer.render(PixelSource("test", large), url.parse(path))
    assert drafts == [None]


def test_meta_decodes_no_pixels(renderer: Renderer, large: bytes, drafts: list[object]) -> None:
    rendered = renderer.render(PixelSource("test", large), url.parse("/unsafe/meta/300x200/x.jpg"))
    assert rendered.content_type == "application/json"
    assert drafts == []


def test_rotated_sources_are_drafted_in_stored_orientation(
    renderer: Renderer, drafts: list[tuple[int, int] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = phone_jpeg((1600, 1200), orientation=6)
    path = "/unsafe/150x200/filters:format(png)/x.jpg"
    drafted = renderer.render(PixelSource("test", data), url.parse(path))
    assert (drafted.width, drafted.height) == (150, 200)
    assert drafts[0] is not None
    assert psnr(drafted.data, full_decode(renderer, data, path, monkeypatch)) >= 38
