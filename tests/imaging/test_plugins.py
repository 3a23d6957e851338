"""Filter plugins named ``module:function``, strict mode, and what the pipeline must load."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from thumbor_py.assembly import build_renderer, load_filter_plugins
from thumbor_py.config import Config, ImagingConfig
from thumbor_py.errors import ConfigError, FilterArgumentError
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.transform import Renderer, Sources
from thumbor_py.url import parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "filters"


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


def jpeg(colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def renderer(**config: object) -> Renderer:
    return build_renderer(ImagingConfig(**config))  # type: ignore[arg-type]


def test_a_plugin_filter_runs_with_typed_arguments() -> None:
    plugged = renderer(filter_plugins=("sepia_filter:sepia",))
    rendered = plugged.render(
        PixelSource("test", jpeg()), parse("/unsafe/filters:sepia(100)/x.jpg")
    )
    red, green, blue = Image.open(io.BytesIO(rendered.data)).getpixel((20, 15))  # type: ignore[misc]
    assert red > green > blue  # brown, from a blue source
    untouched = plugged.render(PixelSource("test", jpeg()), parse("/unsafe/filters:sepia(x)/x.jpg"))
    assert Image.open(io.BytesIO(untouched.data)).getpixel((20, 15))[2] > 150  # type: ignore[index]


def test_plugins_are_unknown_unless_configured() -> None:
    rendered = renderer().render(
        PixelSource("test", jpeg()), parse("/unsafe/filters:sepia(100)/x.jpg")
    )
    assert Image.open(io.BytesIO(rendered.data)).getpixel((20, 15))[2] > 150  # type: ignore[index]


def test_build_registry_takes_plugins_too() -> None:
    assert "sepia" in build_registry(load_filter_plugins(["sepia_filter:sepia"]))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("sepia_filter", "expected 'module:function'", id="no-colon"),
        pytest.param("no_such_module:f", "cannot import", id="missing-module"),
        pytest.param("sepia_filter:nothing", "has no attribute", id="missing-function"),
        pytest.param("sepia_filter:ImageOps", "not marked with @image_filter", id="not-a-filter"),
    ],
)
def test_bad_plugins_are_config_errors_naming_the_key(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"imaging\.filter_plugins\[0\]") as info:
        load_filter_plugins([path])
    assert message in str(info.value)
    with pytest.raises(ConfigError):
        renderer(filter_plugins=(path,))


def test_strict_mode_refuses_unparseable_arguments_before_loading() -> None:
    request = parse("/unsafe/300x200/filters:blur(x)/x.jpg")
    renderer().check_request(request)
    with pytest.raises(FilterArgumentError) as info:
        renderer(strict_filters=True).check_request(request)
    assert info.value.status == 400
    with pytest.raises(FilterArgumentError):
        renderer(strict_filters=True).render(
            PixelSource("test", jpeg()), parse("/unsafe/filters:rotate(45)/x.jpg")
        )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"avif_speed": 11}, "imaging.avif_speed", id="avif-speed"),
        pytest.param({"max_frames": -1}, "imaging.max_frames", id="max-frames"),
    ],
)
def test_imaging_settings_are_checked_with_the_config(config: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_mapping({"security": {"allow_unsafe": True}, "imaging": config}, env={})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/unsafe/300x200/a.jpg", Sources("a.jpg"), id="plain"),
        pytest.param(
            "/unsafe/filters:watermark(w.png,0,0,0):frame(f.png):watermark(w.png,1,1,0)/a.jpg",
            Sources("a.jpg", ("w.png", "f.png")),
            id="resources",
        ),
        pytest.param(
            "/unsafe/filters:extract_focal()/host/unsafe/1x2:30x40/b.jpg",
            Sources("b.jpg"),
            id="extract_focal",
        ),
    ],
)
def test_sources_lists_what_the_pipeline_loads(path: str, expected: Sources) -> None:
    assert renderer().sources(parse(path)) == expected


def test_watermark_renders_with_resources() -> None:
    mark = io.BytesIO()
    Image.new("RGB", (10, 10), (255, 0, 0)).save(mark, "PNG")
    request = parse("/unsafe/filters:watermark(w.png,-0,-0,0)/a.jpg")
    rendered = renderer().render(
        PixelSource("test", jpeg()), request, resources={"w.png": mark.getvalue()}
    )
    image = Image.open(io.BytesIO(rendered.data))
    assert image.getpixel((35, 25))[0] > 200  # type: ignore[index]
    assert image.getpixel((5, 5))[2] > 150  # type: ignore[index]


def test_a_plugin_of_the_old_shape_is_a_config_error_naming_the_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "old_filter.py").write_text(
        "from thumbor_py.imaging.filters import POSITIVE_NUMBER, image_filter\n"
        "@image_filter(POSITIVE_NUMBER)\n"
        "def old(state, value):\n"
        "    state.image = None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"filter_plugins\[0\].*after \(image, ctx\)"):
        load_filter_plugins(["old_filter:old"])
