"""The detector chain and its parts: Thumbor's focal-point maths, the small copy detectors see,
mapping back, the cache, and resolving detector plugins from the config."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from thumbor_py.assembly import build_detectors, build_renderer
from thumbor_py.config import Config, ImagingConfig, PluginConfig
from thumbor_py.detectors.face import FaceDetector, face_point, min_face_side
from thumbor_py.detectors.feature import FeatureDetector
from thumbor_py.errors import ConfigError
from thumbor_py.imaging import geometry
from thumbor_py.imaging.detection import SmartDetection, detection_image, map_points
from thumbor_py.imaging.geometry import Box, FocalPoint, ResizeRequest
from thumbor_py.plugins import Detector, PluginContext

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "detectors"
CONTEXT = PluginContext(max_source_bytes=1024)


# ---------------------------------------------------------------------------------------
# Detectors for the chain tests, named by ``module:Class`` as a deployment would.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _NoSettings:
    """No settings."""


class NothingDetector:
    """Finds nothing, counting calls."""

    Settings = _NoSettings
    calls: ClassVar[int] = 0

    def __init__(self, settings: _NoSettings, context: PluginContext) -> None:
        pass

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        NothingDetector.calls += 1
        return []


class CornerDetector:
    """A region at the bottom-right quarter of whatever it is shown, slowly, counting calls."""

    Settings = _NoSettings
    calls: ClassVar[int] = 0
    delay: ClassVar[float] = 0.0
    seen: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, settings: _NoSettings, context: PluginContext) -> None:
        pass

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        CornerDetector.calls += 1
        CornerDetector.seen.append(image.size)
        time.sleep(CornerDetector.delay)
        width, height = image.size
        return [FocalPoint(width * 0.75, height * 0.75, 16.0, 4, 4, "corner")]


class NotADetector:
    """Has settings but no ``detect``."""

    Settings = _NoSettings

    def __init__(self, settings: _NoSettings, context: PluginContext) -> None:
        pass


class NoSettingsDetector:
    """A ``detect`` but no Settings dataclass."""

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        return []


class FailingConstructor:
    """Cannot be created."""

    Settings = _NoSettings

    def __init__(self, settings: _NoSettings, context: PluginContext) -> None:
        raise ValueError("no model file")

    def detect(self, image: Image.Image) -> list[FocalPoint]:
        return []


@pytest.fixture(autouse=True)
def _reset_counters() -> None:
    NothingDetector.calls = CornerDetector.calls = 0
    CornerDetector.delay = 0.0
    CornerDetector.seen = []


HERE = "tests.imaging.test_detection"


def chain(
    *names: str, detection_pixels: int = 180_000, detection_cache_size: int = 1024
) -> SmartDetection:
    config = ImagingConfig(
        detectors=tuple(PluginConfig(use=name) for name in names),
        detection_pixels=detection_pixels,
        detection_cache_size=detection_cache_size,
    )
    return SmartDetection(config, build_detectors(config.detectors, CONTEXT))


# ---------------------------------------------------------------------------------------
# Thumbor's maths
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        pytest.param((100, 100, 50, 50), (125.0, 119.0, 2500.0), id="nudged-up-12pct"),
        pytest.param((10, 5, 50, 50), (35.0, 30.0, 2500.0), id="top-edge-not-nudged"),
        pytest.param((0, 12, 100, 100), (50.0, 50.0, 10000.0), id="exactly-at-the-edge"),
        pytest.param((7, 40, 33, 33), (23.0, 52.0, 1089.0), id="odd-size-floors"),
    ],
)
def test_face_point_is_thumbors(
    box: tuple[int, int, int, int], expected: tuple[float, float, float]
) -> None:
    point = face_point(*box)
    assert (point.x, point.y, point.weight) == expected
    assert (point.width, point.height, point.origin) == (box[2], box[3], "Face Detection")


@pytest.mark.parametrize(
    ("size", "side"),
    [((400, 300), 20), ((4000, 3000), 200), ((64, 64), 20)],
)
def test_min_face_side_is_a_fifteenth_of_the_short_side(size: tuple[int, int], side: int) -> None:
    assert min_face_side(size) == side


def test_faces_weigh_by_area_in_the_centre_of_mass() -> None:
    big = face_point(0, 100, 300, 300)  # weight 90000, centre x 150
    small = face_point(900, 100, 100, 100)  # weight 10000, centre x 950
    x, _ = geometry.center_of_mass([big, small])
    assert x == (150 * 90000 + 950 * 10000) // 100000


def test_the_crop_centres_on_the_focal_point_and_is_clamped() -> None:
    request = ResizeRequest(width=100, height=100)
    centred = geometry.plan(request, (1000, 200), [FocalPoint(500, 100)])
    assert centred.auto_crop == Box(400, 0, 600, 200)
    clamped = geometry.plan(request, (1000, 200), [FocalPoint(990, 100)])
    assert clamped.auto_crop == Box(800, 0, 1000, 200)
    fit = geometry.plan(ResizeRequest(width=100, height=100, fit_in=True), (1000, 200), [])
    assert fit.auto_crop is None


def test_points_in_a_manual_crop_move_and_those_outside_are_dropped() -> None:
    inside, outside = FocalPoint(150, 120), FocalPoint(10, 10)
    moved = geometry.points_in_crop([inside, outside], Box(100, 100, 300, 300))
    assert [(p.x, p.y) for p in moved] == [(50, 20)]
    (region,) = geometry.points_in_crop([face_point(120, 110, 40, 40)], Box(100, 100, 300, 300))
    assert region.region == Box(20, 10, 60, 50)
    assert geometry.points_in_crop([outside], None) == (outside,)


def face(left: int, top: int, right: int, bottom: int, weight: float = 1.0) -> FocalPoint:
    return FocalPoint(0, 0, weight, region=Box(left, top, right, bottom))


@pytest.mark.parametrize(
    ("crop", "faces", "expected"),
    [
        pytest.param(
            Box(0, 100, 400, 356),
            [face(100, 120, 300, 320)],
            Box(0, 100, 400, 356),
            id="already-inside-with-margin",
        ),
        pytest.param(
            Box(0, 60, 400, 316),
            [face(100, 100, 300, 331)],
            Box(0, 88, 400, 344),
            id="chin-cut-centred-without-room-for-margins",
        ),
        pytest.param(
            Box(0, 0, 400, 300),
            [face(100, 200, 200, 300)],
            Box(0, 10, 400, 310),
            id="moved-down-with-margin",
        ),
        pytest.param(
            Box(0, 0, 400, 300),
            [face(100, 250, 200, 350)],
            Box(0, 60, 400, 360),
            id="clamped-at-the-bottom",
        ),
        pytest.param(
            Box(0, 0, 400, 200),
            [face(0, 0, 100, 300)],
            Box(0, 0, 400, 200),
            id="too-tall-unchanged",
        ),
        pytest.param(
            Box(0, 0, 200, 360),
            [face(0, 0, 100, 100, 1.0), face(300, 0, 400, 100, 9.0)],
            Box(200, 0, 400, 360),
            id="group-too-wide-keeps-the-heaviest",
        ),
        pytest.param(Box(0, 0, 200, 360), [FocalPoint(0, 0)], Box(0, 0, 200, 360), id="no-regions"),
    ],
)
def test_crops_keep_detected_regions_whole(
    crop: Box, faces: list[FocalPoint], expected: Box
) -> None:
    assert geometry.keep_regions(crop, faces, (400, 360)) == expected


def test_a_nudged_face_keeps_its_chin_in_a_tight_crop() -> None:
    point = face_point(100, 100, 200, 200)  # centre y 176 (nudged from 200)
    plain = geometry.auto_crop_box((400, 1000), (400.0, 220.0), (point.x, point.y))
    assert plain is not None
    assert plain.bottom < 300
    kept = geometry.plan(ResizeRequest(width=400, height=220), (400, 1000), [point])
    assert kept.auto_crop is not None
    assert kept.auto_crop.top <= 100
    assert kept.auto_crop.bottom >= 300


# ---------------------------------------------------------------------------------------
# The small copy and mapping back
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        pytest.param("RGB", (4000, 3000), (400, 300), id="landscape"),
        pytest.param("RGBA", (300, 1200), (173, 693), id="portrait-alpha"),
        pytest.param("P", (800, 800), (346, 346), id="palette"),
        pytest.param("L", (400, 300), (400, 300), id="small-kept"),
        pytest.param("RGB", (4800, 400), (1200, 100), id="panorama"),
    ],
)
def test_detection_image_is_a_small_rgb_copy(
    mode: str, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    source = Image.new(mode, size)
    small = detection_image(source, 120_000)
    assert small.size == expected
    assert small.mode == "RGB"
    assert small is not source


def test_points_map_back_and_regions_scale_their_weight() -> None:
    face = face_point(100, 50, 40, 40)
    corner = FocalPoint(10, 20, origin="Feature Detection")
    mapped_face, mapped_corner = map_points([face, corner], (400, 300), (4000, 3000))
    assert (mapped_face.x, mapped_face.y) == (face.x * 10, face.y * 10)
    assert (mapped_face.width, mapped_face.height) == (400, 400)
    assert mapped_face.weight == face.weight * 100
    assert (mapped_corner.x, mapped_corner.y, mapped_corner.weight) == (100, 200, 1.0)
    assert (mapped_corner.width, mapped_corner.height) == (1, 1)
    assert mapped_face.region == Box(1000, 500, 1400, 900)


# ---------------------------------------------------------------------------------------
# The built-in detectors on real pixels
# ---------------------------------------------------------------------------------------


def test_face_detector_finds_the_astronauts_face() -> None:
    image = detection_image(Image.open(SAMPLES / "astronaut.jpg"), 120_000)
    (face,) = FaceDetector(FaceDetector.Settings(), CONTEXT).detect(image)
    scale = 512 / image.width
    # The face is at about (174, 64)-(275, 165) in the 512-pixel original.
    assert 174 < face.x * scale < 275
    assert 64 < face.y * scale < 165
    assert 80 < face.width * scale < 120


def test_detectors_find_nothing_on_a_flat_image() -> None:
    flat = Image.new("RGB", (300, 200), (90, 120, 150))
    assert FaceDetector(FaceDetector.Settings(), CONTEXT).detect(flat) == []
    assert FeatureDetector(FeatureDetector.Settings(), CONTEXT).detect(flat) == []


def test_feature_detector_finds_corners_on_texture_with_weight_one() -> None:
    pixels = np.full((200, 400), 128, np.uint8)
    pixels[:, 300:] = np.random.default_rng(1).integers(0, 256, (200, 100), dtype=np.uint8)
    points = FeatureDetector(FeatureDetector.Settings(), CONTEXT).detect(Image.fromarray(pixels))
    assert 0 < len(points) <= 20
    assert all(p.x >= 298 and p.weight == 1.0 for p in points)


# ---------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------


def test_a_detector_that_finds_nothing_passes_to_the_next() -> None:
    detection = chain(f"{HERE}:NothingDetector", f"{HERE}:CornerDetector", detection_pixels=120_000)
    points = detection.detect(lambda: Image.new("RGB", (800, 600)), (800, 600), "k")
    assert NothingDetector.calls == CornerDetector.calls == 1
    assert CornerDetector.seen == [(400, 300)]  # 120 000 pixels
    (point,) = points
    assert (point.x, point.y, point.width, point.weight) == (600, 450, 8, 64.0)


def test_the_first_detector_that_finds_something_wins() -> None:
    detection = chain(f"{HERE}:CornerDetector", f"{HERE}:NothingDetector")
    assert detection.detect(lambda: Image.new("RGB", (100, 100)), (100, 100), "k")
    assert NothingDetector.calls == 0


def test_nothing_found_is_an_empty_answer_and_is_cached() -> None:
    detection = chain(f"{HERE}:NothingDetector")
    image = Image.new("RGB", (100, 100))
    assert detection.detect(lambda: image, (100, 100), "k") == ()
    assert detection.detect(lambda: image, (100, 100), "k") == ()
    assert detection.cached("k") == ()
    assert NothingDetector.calls == 1


def test_the_cache_is_a_bounded_lru() -> None:
    detection = chain(f"{HERE}:CornerDetector", detection_cache_size=2)
    image = Image.new("RGB", (100, 100))
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        detection.detect(lambda: image, (100, 100), key)
    assert CornerDetector.calls == 3
    assert detection.cached("a") is not None
    assert detection.cached("b") is None
    assert detection.cached("c") is not None


def test_a_zero_sized_cache_keeps_nothing() -> None:
    detection = chain(f"{HERE}:CornerDetector", detection_cache_size=0)
    image = Image.new("RGB", (100, 100))
    detection.detect(lambda: image, (100, 100), "k")
    detection.detect(lambda: image, (100, 100), "k")
    assert CornerDetector.calls == 2


def test_concurrent_misses_on_one_source_detect_once() -> None:
    CornerDetector.delay = 0.2
    detection = chain(f"{HERE}:CornerDetector")
    image = Image.new("RGB", (100, 100))
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(detection.detect(lambda: image, (100, 100), "k"))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert CornerDetector.calls == 1
    assert len(results) == 4
    assert len(set(results)) == 1


def test_keys_name_the_detector_configuration() -> None:
    one = chain(f"{HERE}:CornerDetector")
    other = chain(f"{HERE}:NothingDetector", f"{HERE}:CornerDetector")
    assert one.key("a.jpg", b"jpeg", (10, 10)) != other.key("a.jpg", b"jpeg", (10, 10))
    same = chain(f"{HERE}:CornerDetector")
    assert one.key("a.jpg", b"jpeg", (10, 10)) == same.key("a.jpg", b"jpeg", (10, 10))


def test_keys_name_the_content_and_the_pixel_frame() -> None:
    detection = chain(f"{HERE}:CornerDetector")
    key = detection.key("a.jpg", b"jpeg", (10, 10))
    assert key != detection.key("a.jpg", b"JPEG", (10, 10))  # same length, new content
    assert key != detection.key("b.jpg", b"jpeg", (10, 10))
    assert key != detection.key("a.jpg", b"jpeg", (10, 10), "trim")


def test_errors_propagate_and_are_not_cached() -> None:
    class Boom:
        def detect(self, image: Image.Image) -> list[FocalPoint]:
            raise RuntimeError("cv2.error: bad image")

    detection = chain()
    detection.detectors = (Boom(),)
    with pytest.raises(RuntimeError):
        detection.detect(lambda: Image.new("RGB", (10, 10)), (10, 10), "k")
    assert detection.cached("k") is None


# ---------------------------------------------------------------------------------------
# Resolving detectors from the config
# ---------------------------------------------------------------------------------------


def test_the_default_chain_is_face_then_feature() -> None:
    detectors = build_detectors(ImagingConfig().detectors, CONTEXT)
    assert [type(d) for d in detectors] == [FaceDetector, FeatureDetector]
    assert all(isinstance(d, Detector) for d in detectors)
    assert not chain().enabled


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("eyes", "neither a known detector alias", id="unknown-alias"),
        pytest.param("no_such_module:Detector", "cannot import", id="missing-module"),
        pytest.param(f"{HERE}:Missing", "has no attribute", id="missing-class"),
        pytest.param(f"{HERE}:NotADetector", "does not implement Detector", id="no-detect"),
        pytest.param(f"{HERE}:NoSettingsDetector", "no Settings dataclass", id="no-settings"),
        pytest.param(f"{HERE}:FailingConstructor", "no model file", id="constructor-fails"),
    ],
)
def test_a_bad_detector_is_a_config_error_naming_its_index(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"imaging\.detectors\[1\]") as info:
        build_detectors(["face", name], CONTEXT, key="imaging.detectors")
    assert message in str(info.value)
    with pytest.raises(ConfigError, match=r"imaging\.detectors\[1\]"):
        build_renderer(
            ImagingConfig(detectors=(PluginConfig(use="feature"), PluginConfig(use=name)))
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [("detection_pixels", 16), ("detection_cache_size", -1), ("detection_error_max_age", -5)],
)
def test_bad_detection_settings_are_config_errors(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"imaging\.{field}"):
        Config.from_mapping({"security": {"allow_unsafe": True}, "imaging": {field: value}})


def test_the_example_plugin_loads_by_module_and_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    (detector,) = build_detectors(["brightest_detector:BrightestDetector"], CONTEXT)
    image = Image.new("RGB", (400, 200), (40, 40, 40))
    image.paste((255, 255, 255), (350, 150, 400, 200))
    (point,) = detector.detect(image)
    assert point.x > 350
    assert point.y > 150
    assert detector.detect(Image.new("RGB", (400, 200), (40, 40, 40))) == []


def yaml_detectors(*specs: object) -> tuple[PluginConfig, ...]:
    config = Config.from_mapping(
        {"security": {"allow_unsafe": True}, "imaging": {"detectors": list(specs)}}, env={}
    )
    return config.imaging.detectors


def test_detector_settings_come_from_the_yaml() -> None:
    specs = yaml_detectors(
        {"use": "face", "settings": {"scale_factor": 1.1, "min_neighbors": 5}}, "feature"
    )
    face, feature = build_detectors(specs, CONTEXT)
    assert isinstance(face, FaceDetector)
    assert face.settings == FaceDetector.Settings(scale_factor=1.1, min_neighbors=5)
    assert isinstance(feature, FeatureDetector)
    assert feature.settings == FeatureDetector.Settings()


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        pytest.param(
            {"use": "face", "settings": {"scale": 2}}, r"\[0\]\.settings\.scale", id="key"
        ),
        pytest.param(
            {"use": "feature", "settings": {"max_corners": "many"}},
            r"\[0\]\.settings\.max_corners",
            id="type",
        ),
        pytest.param({"settings": {}}, r"\[0\]\.use", id="no-use"),
    ],
)
def test_bad_detector_settings_name_their_key(spec: object, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"imaging\.detectors{key}"):
        build_detectors(yaml_detectors(spec), CONTEXT)


def test_the_short_and_the_long_form_build_the_same_chain() -> None:
    assert yaml_detectors("face", "feature") == yaml_detectors(
        {"use": "face"}, {"use": "feature", "settings": {}}
    )
