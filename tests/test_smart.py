"""``smart`` end to end: real portraits keep their faces, texture pulls the crop, explicit focal
points win, detection is cached per source, and a failing detector never fails a request."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from thumbor_py.app import PIPELINE_KEY, create_app
from thumbor_py.assembly import build_renderer
from thumbor_py.config import Config, ImagingConfig, PluginConfig
from thumbor_py.detectors.face import FaceDetector
from thumbor_py.imaging.geometry import Box, FocalPoint
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.transform import Renderer
from thumbor_py.plugins import PluginContext
from thumbor_py.signing import signed_path
from thumbor_py.url import parse

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
KEY = "smart-test-key"

# Face boxes (left, top, right, bottom) in the samples, checked by eye.
FACES = {
    "astronaut.jpg": Box(174, 64, 275, 165),
    "grace_hopper.jpg": Box(149, 103, 380, 334),
}


class BrokenDetector:
    """A detector with a bug: it always raises."""

    calls: ClassVar[int] = 0

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """No settings."""

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        pass

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        BrokenDetector.calls += 1
        raise RuntimeError("OpenCV(4.x) error: (-215:Assertion failed)")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return build_renderer(ImagingConfig())


@pytest.fixture
def face_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes the face detector was shown, one entry per call."""
    calls: list[tuple[int, int]] = []
    original = FaceDetector.detect

    def counting(self: FaceDetector, image: Image.Image) -> list[FocalPoint]:
        calls.append(image.size)
        return original(self, image)

    monkeypatch.setattr(FaceDetector, "detect", counting)
    return calls


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def on_canvas(name: str, size: tuple[int, int], at: tuple[int, int]) -> tuple[bytes, Box]:
    """The sample pasted at ``at`` on a plain canvas of ``size``, and its face box there."""
    canvas = Image.new("RGB", size, (118, 124, 130))
    canvas.paste(Image.open(SAMPLES / name), at)
    face = FACES[name]
    moved = Box(face.left + at[0], face.top + at[1], face.right + at[0], face.bottom + at[1])
    return jpeg(canvas), moved


def meta(renderer: Renderer, data: bytes, options: str) -> dict[str, Any]:
    rendered = renderer.render(
        PixelSource("test", data), parse(f"/unsafe/meta/{options}/image.jpg")
    )
    body: dict[str, Any] = json.loads(rendered.data)["thumbor"]
    return body


def crop_of(body: dict[str, Any], size: tuple[int, int]) -> Box:
    crops = [op for op in body["operations"] if op["type"] == "crop"]
    if not crops:
        return Box(0, 0, *size)
    (crop,) = crops
    return Box(crop["left"], crop["top"], crop["right"], crop["bottom"])


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def contains(outer: Box, inner: Box) -> bool:
    return (
        outer.left <= inner.left
        and outer.top <= inner.top
        and inner.right <= outer.right
        and inner.bottom <= outer.bottom
    )


# ---------------------------------------------------------------------------------------
# Faces
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canvas", "at", "box"),
    [
        pytest.param("astronaut.jpg", (1600, 512), (0, 0), "300x300", id="astronaut-left"),
        pytest.param("astronaut.jpg", (1600, 512), (1088, 0), "300x300", id="astronaut-right"),
        pytest.param("astronaut.jpg", (512, 1400), (0, 888), "300x300", id="astronaut-bottom"),
        pytest.param("grace_hopper.jpg", (1700, 600), (0, 0), "300x300", id="hopper-left"),
        pytest.param("grace_hopper.jpg", (1700, 600), (1188, 0), "300x300", id="hopper-right"),
        pytest.param("grace_hopper.jpg", (1700, 600), (300, 0), "300x300", id="hopper-off-left"),
        pytest.param("astronaut.jpg", (512, 512), (0, 0), "300x100", id="astronaut-strip"),
        pytest.param("grace_hopper.jpg", (512, 600), (0, 0), "300x200", id="hopper-strip"),
    ],
)
def test_the_smart_crop_keeps_the_whole_face(
    renderer: Renderer, name: str, canvas: tuple[int, int], at: tuple[int, int], box: str
) -> None:
    data, face = on_canvas(name, canvas, at)
    smart = meta(renderer, data, f"{box}/smart")
    assert contains(crop_of(smart, canvas), face), (crop_of(smart, canvas), face)
    plain = meta(renderer, data, box)
    assert not contains(crop_of(plain, canvas), face)
    (point,) = smart["focal_points"]
    assert point["origin"] == "Face Detection"
    assert face.left < point["x"] < face.right
    assert face.top < point["y"] < face.bottom
    # Nudged up towards the forehead: above the middle of the face box.
    assert point["y"] < (face.top + face.bottom) / 2


def test_the_rendered_pixels_follow_the_crop(renderer: Renderer) -> None:
    data, _ = on_canvas("astronaut.jpg", (1600, 512), (1088, 0))
    rendered = renderer.render(PixelSource("test", data), parse("/unsafe/300x300/smart/image.jpg"))
    image = Image.open(io.BytesIO(rendered.data))
    assert image.size == (300, 300)
    plain = Image.open(
        io.BytesIO(renderer.render(PixelSource("test", data), parse("/unsafe/300x300/x.jpg")).data)
    )
    # The plain crop is mostly the empty canvas; the smart one is the photograph.
    assert np.asarray(plain.convert("L")).std() < np.asarray(image.convert("L")).std() / 2


def test_fit_in_ignores_focal_points_and_skips_detection(
    renderer: Renderer, face_calls: list[tuple[int, int]]
) -> None:
    data, _ = on_canvas("astronaut.jpg", (1600, 512), (0, 0))
    fitted = renderer.render(
        PixelSource("test", data), parse("/unsafe/fit-in/300x300/smart/image.jpg")
    )
    plain = renderer.render(PixelSource("test", data), parse("/unsafe/fit-in/300x300/image.jpg"))
    assert fitted.data == plain.data
    same_ratio = renderer.render(
        PixelSource("test", data), parse("/unsafe/800x256/smart/image.jpg")
    )
    assert Image.open(io.BytesIO(same_ratio.data)).size == (800, 256)
    assert face_calls == []  # nothing would move: no detection


# ---------------------------------------------------------------------------------------
# Features, explicit focal points, meta and debug
# ---------------------------------------------------------------------------------------


def textured(side: str) -> bytes:
    pixels = np.full((400, 1200), 128, np.uint8)
    noise = np.random.default_rng(7).integers(0, 256, (400, 300), dtype=np.uint8)
    if side == "right":
        pixels[:, 900:] = noise
    else:
        pixels[:, :300] = noise
    return jpeg(Image.fromarray(pixels))


@pytest.mark.parametrize("side", ["left", "right"])
def test_features_pull_the_crop_toward_texture(renderer: Renderer, side: str) -> None:
    data = textured(side)
    plain = crop_of(meta(renderer, data, "300x300"), (1200, 400))
    body = meta(renderer, data, "300x300/smart")
    smart = crop_of(body, (1200, 400))
    assert plain == Box(400, 0, 800, 400)
    assert smart == (Box(800, 0, 1200, 400) if side == "right" else Box(0, 0, 400, 400))
    assert {p["origin"] for p in body["focal_points"]} == {"Feature Detection"}
    assert all(p["z"] == 1.0 for p in body["focal_points"])


def test_explicit_focal_points_win_over_detection(
    renderer: Renderer, face_calls: list[tuple[int, int]]
) -> None:
    data, _ = on_canvas("astronaut.jpg", (1600, 512), (0, 0))
    body = meta(renderer, data, "300x300/smart/filters:focal(1400x200:1500x300)")
    assert crop_of(body, (1600, 512)) == Box(1088, 0, 1600, 512)
    assert [p["origin"] for p in body["focal_points"]] == ["Explicit"]
    assert face_calls == []


def test_focal_points_follow_a_manual_crop(renderer: Renderer) -> None:
    data, _ = on_canvas("astronaut.jpg", (1600, 512), (0, 0))
    body = meta(renderer, data, "1000x0:1600x300/200x200/smart/filters:focal(1500x100:1550x150)")
    # In the 600x300 manual crop the point is at (525, 125): the auto crop hugs the right.
    assert [(p["x"], p["y"]) for p in body["focal_points"]] == [(525, 125)]
    assert body["operations"][1] == {
        "type": "crop",
        "left": 300,
        "top": 0,
        "right": 600,
        "bottom": 300,
    }


def test_no_detection_falls_back_to_alignment(renderer: Renderer) -> None:
    flat = jpeg(Image.new("RGB", (900, 300), (20, 120, 200)))
    body = meta(renderer, flat, "300x300/right/smart")
    assert crop_of(body, (900, 300)) == Box(600, 0, 900, 300)
    assert [p["origin"] for p in body["focal_points"]] == ["alignment"]


def test_debug_draws_the_detected_faces(renderer: Renderer) -> None:
    data = (SAMPLES / "astronaut.jpg").read_bytes()
    path = "/unsafe/debug/300x300/smart/filters:format(png)/astronaut.jpg"
    image = Image.open(
        io.BytesIO(renderer.render(PixelSource("test", data), parse(path)).data)
    ).convert("RGB")
    pixels = np.asarray(image).astype(int)
    yellow = (pixels[:, :, 0] > 240) & (pixels[:, :, 1] > 240) & (pixels[:, :, 2] < 40)
    rows, cols = np.nonzero(yellow)
    face = FACES["astronaut.jpg"]
    assert len(rows) > 200
    assert face.left - 10 < cols.min()
    assert cols.max() < face.right + 10
    assert face.top - 30 < rows.min()
    assert rows.max() < face.bottom + 10


# ---------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------


def test_four_sizes_of_one_photo_detect_once(face_calls: list[tuple[int, int]]) -> None:
    renderer = build_renderer(ImagingConfig())
    data, face = on_canvas("grace_hopper.jpg", (1700, 600), (1188, 0))
    for options in ("300x300/smart", "150x150/smart", "200x100/smart", "meta/60x60/smart"):
        rendered = renderer.render(PixelSource("test", data), parse(f"/unsafe/{options}/image.jpg"))
        assert rendered.cacheable
    assert len(face_calls) == 1
    width, height = face_calls[0]
    assert width * height <= ImagingConfig().detection_pixels * 1.01  # rounded sides
    body = meta(renderer, data, "300x300/smart")  # answered from the cache, no decoding
    assert contains(crop_of(body, (1700, 600)), face)
    assert len(face_calls) == 1
    other, _ = on_canvas("grace_hopper.jpg", (1700, 600), (0, 0))
    renderer.render(PixelSource("test", other), parse("/unsafe/300x300/smart/other.jpg"))
    assert len(face_calls) == 2


# ---------------------------------------------------------------------------------------
# Failure: default crop, not stored, short max-age, never a 500
# ---------------------------------------------------------------------------------------


def test_a_failing_detector_gives_the_default_crop_uncacheable() -> None:
    BrokenDetector.calls = 0
    config = ImagingConfig(detectors=(PluginConfig(use="tests.test_smart:BrokenDetector"),))
    renderer = build_renderer(config)
    data, _ = on_canvas("astronaut.jpg", (1600, 512), (0, 0))
    broken = renderer.render(PixelSource("test", data), parse("/unsafe/300x300/smart/image.jpg"))
    assert (broken.cacheable, broken.max_age) == (False, 60)
    plain = renderer.render(PixelSource("test", data), parse("/unsafe/300x300/image.jpg"))
    assert plain.cacheable
    assert broken.data == plain.data
    body = renderer.render(PixelSource("test", data), parse("/unsafe/meta/300x300/smart/image.jpg"))
    assert not body.cacheable
    assert BrokenDetector.calls == 2  # failures are not cached


async def test_a_failing_detector_is_not_stored_and_not_a_500(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    config = Config.from_mapping(
        {
            "security": {"key": KEY, "allow_unsafe": True},
            "loader": {"use": "file", "settings": {"root": str(SAMPLES)}},
            "imaging": {
                "detectors": ["tests.test_smart:BrokenDetector"],
                "detection_error_max_age": 30,
            },
            "result_storage": {"use": "file", "settings": {"root": str(tmp_path)}},
        },
        env={},
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    path = signed_path(KEY, "300x100/smart/astronaut.jpg")  # a crop: detection runs
    for _ in range(2):
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["Cache-Control"] == "public, max-age=30"
        assert "X-Result-Storage" not in response.headers
        await client.app[PIPELINE_KEY].drain(5)
    assert files_under(tmp_path) == []
    ok = await client.get(signed_path(KEY, "300x100/astronaut.jpg"))
    assert ok.headers["Cache-Control"] == "public, max-age=86400"
