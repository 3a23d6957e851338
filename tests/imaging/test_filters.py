"""Every built-in filter on a small synthetic image, asserting pixels."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

import pytest
from PIL import Image

from tests.imaging.helpers import pixel
from thumbor_py.errors import FilterArgumentError
from thumbor_py.imaging import pixels
from thumbor_py.imaging.filters import (
    FilterContext,
    OutputOptions,
    RenderPlan,
    apply_options,
    apply_pixels,
    apply_plan,
    bind,
    build_registry,
)
from thumbor_py.imaging.geometry import FocalPoint, ResizeRequest
from thumbor_py.imaging.plan import Budget
from thumbor_py.url import parse_filters

REGISTRY = build_registry()


def apply(
    image: Image.Image,
    filters: str,
    *,
    size: tuple[int, int] = (0, 0),
    resources: Mapping[str, bytes] | None = None,
    strict: bool = False,
    plan: RenderPlan | None = None,
    map_point: Callable[[float, float], tuple[float, float]] | None = None,
) -> Image.Image:
    """Run ``filters`` (URL syntax) on ``image`` as the renderer would."""
    bound = bind(parse_filters(filters), registry=REGISTRY, strict=strict)
    plan = plan or RenderPlan(
        source="", geometry=ResizeRequest(width=size[0], height=size[1], fit_in=True)
    )
    plan = apply_plan(bound, "pre_load", plan, strict=strict)
    plan = apply_plan(bound, "after_load", plan, strict=strict)
    ctx = FilterContext(
        plan=plan,
        budget=Budget(max_output_pixels=40_000_000),
        resources=resources or {},
        map_point=map_point,
    )
    return apply_pixels(bound, image, ctx, strict=strict)


def planned(filters: str, plan: RenderPlan | None = None) -> RenderPlan:
    """The plan after the pre- and after-load filters of ``filters``."""
    bound = bind(parse_filters(filters), registry=REGISTRY)
    plan = plan or RenderPlan(source="", geometry=ResizeRequest())
    return apply_plan(bound, "after_load", apply_plan(bound, "pre_load", plan))


def options(filters: str) -> OutputOptions:
    """The output options after the option filters of ``filters``."""
    bound = bind(parse_filters(filters), registry=REGISTRY)
    return apply_options(bound, OutputOptions(quality=80))


def solid(color: tuple[int, ...], size: tuple[int, int] = (20, 10)) -> Image.Image:
    return Image.new("RGBA" if len(color) == 4 else "RGB", size, color)


def edge(left: int = 0, right: int = 255, size: tuple[int, int] = (40, 10)) -> Image.Image:
    """Left half ``left``, right half ``right`` (grey RGB): a vertical edge at x = 20."""
    image = Image.new("RGB", size, (left,) * 3)
    image.paste((right,) * 3, (size[0] // 2, 0, size[0], size[1]))
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filters", "before", "after"),
    [
        pytest.param("brightness(20)", (100, 100, 100), (151, 151, 151), id="brightness-up"),
        pytest.param("brightness(-20)", (100, 100, 100), (49, 49, 49), id="brightness-down"),
        pytest.param("brightness(200)", (100, 100, 100), (255, 255, 255), id="brightness-clamps"),
        pytest.param("contrast(10)", (200, 50, 128), (215, 34, 128), id="contrast"),
        pytest.param("rgb(20,0,0)", (100, 100, 100), (151, 100, 100), id="rgb-red+51"),
        pytest.param("rgb(-20,10,0)", (100, 100, 100), (49, 125, 100), id="rgb-mixed"),
        pytest.param("colorize(40,80,20,ffff00)", (100, 100, 100), (162, 224, 80), id="colorize"),
        pytest.param("saturation(0)", (200, 100, 50), (134, 134, 134), id="saturation-0"),
        pytest.param("saturation(1)", (200, 100, 50), (200, 100, 50), id="saturation-1"),
        pytest.param(
            "curve([(0,0),(255,255)],[(0,255),(255,0)],[(0,0),(255,255)],[(0,0),(255,255)])",
            (100, 100, 100),
            (155, 100, 100),
            id="curve-invert-red",
        ),
        pytest.param(
            "curve([(0,0),(128,64),(255,255)],[(0,0),(255,255)],[(0,0),(255,255)],[(0,0),(255,255)])",
            (128, 0, 255),
            (64, 0, 255),
            id="curve-darken",
        ),
        pytest.param("rgb(20,0,0):rgb(0,20,0)", (0, 0, 0), (51, 51, 0), id="filters-chain"),
    ],
)
def test_colour_filters_change_pixels_as_thumbor(
    filters: str, before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    assert apply(solid(before), filters).getpixel((3, 3)) == after


def test_colour_filters_keep_alpha() -> None:
    result = apply(solid((100, 100, 100, 40)), "brightness(20)")
    assert result.mode == "RGBA"
    assert result.getpixel((0, 0)) == (151, 151, 151, 40)


def test_equalize_stretches_the_histogram() -> None:
    image = edge(50, 100)
    result = apply(image, "equalize()")
    assert result.getpixel((0, 0)) == (0, 0, 0)
    assert result.getpixel((39, 0)) == (255, 255, 255)


def test_noise_is_seeded_and_bounded() -> None:
    image = solid((100, 100, 100), (50, 50))
    first = apply(image, "noise(20,7)")
    assert pixels.to_array(first).tolist() == pixels.to_array(apply(image, "noise(20,7)")).tolist()
    values = pixels.to_array(first).astype(int)
    assert (values[:, :, 0] == values[:, :, 1]).all()  # one offset for R, G and B
    assert 90 <= values.min() < 95
    assert 105 < values.max() <= 109


@pytest.mark.parametrize(
    ("image", "mode"),
    [
        pytest.param(solid((200, 100, 50)), "L", id="rgb-to-L"),
        pytest.param(solid((200, 100, 50, 128)), "LA", id="rgba-to-LA"),
    ],
)
def test_grayscale(image: Image.Image, mode: str) -> None:
    result = apply(image, "grayscale()")
    assert result.mode == mode
    value = result.getpixel((0, 0))
    assert (value[0] if isinstance(value, tuple) else value) == 124


def test_blur_softens_an_edge_by_the_kernel_weight() -> None:
    result = apply(edge(), "blur(3)")
    weights = pixels.gaussian_kernel(3, 3.0)
    # x=19 is black; its neighbours at +1..+3 are white. Pillow's Gaussian of the same
    # spread lands within a few levels of Thumbor's 7-tap kernel.
    edge_pixel = result.getpixel((19, 5))
    assert isinstance(edge_pixel, tuple)
    assert abs(edge_pixel[0] - int(255 * weights[4:].sum())) <= 6
    assert result.getpixel((0, 5)) == (0, 0, 0)
    assert result.getpixel((39, 5)) == (255, 255, 255)
    narrow = apply(edge(), "blur(3,1)")
    assert pixel(narrow, (19, 5))[0] < pixel(result, (19, 5))[0]


def test_convolution_applies_a_normalised_kernel() -> None:
    result = apply(edge(), "convolution(1;2;1;2;4;2;1;2;1,3,true)")
    assert result.getpixel((19, 5)) == (63, 63, 63)
    assert result.getpixel((20, 5)) == (191, 191, 191)
    raw = apply(edge(0, 10), "convolution(0;0;0;0;2;0;0;0;0,3,false)")
    assert raw.getpixel((30, 5)) == (20, 20, 20)


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param("convolution(1;2;1;2,2)", id="even-kernel"),
        pytest.param("rotate(45)", id="rotate-not-90"),
        pytest.param("colorize(10,10,10,zzzzzz)", id="colorize-bad-hex"),
        pytest.param("proportion(2)", id="proportion-over-1"),
        pytest.param("fill(notacolour)", id="fill-bad-colour"),
    ],
)
def test_unusable_argument_values_are_ignored_or_refused_in_strict_mode(filters: str) -> None:
    image = solid((10, 20, 30))
    assert apply(image, filters).tobytes() == image.tobytes()
    with pytest.raises(FilterArgumentError):
        apply(image, filters, strict=True)


def test_arguments_that_do_not_parse_are_dropped_unless_strict() -> None:
    image = solid((10, 20, 30))
    assert apply(image, "blur(x):brightness(abc)").tobytes() == image.tobytes()
    with pytest.raises(FilterArgumentError):
        apply(image, "blur(x)", strict=True)


def test_sharpen_raises_local_contrast() -> None:
    result = apply(edge(100, 150), "sharpen(2,1,true)")
    assert pixel(result, (18, 5))[0] < 100
    assert pixel(result, (21, 5))[0] > 150
    assert pixel(result, (2, 5))[0] in range(98, 103)


@pytest.mark.parametrize(
    ("filters", "corner", "mode"),
    [
        pytest.param("round_corner(20,255,0,0)", (255, 0, 0), "RGB", id="colour"),
        pytest.param("round_corner(30|10,0,255,0)", (0, 255, 0), "RGB", id="elliptic"),
        pytest.param("round_corner(20,0,0,0,1)", (0, 0, 0, 0), "RGBA", id="transparent"),
    ],
)
def test_round_corner_paints_the_corners(filters: str, corner: tuple[int, ...], mode: str) -> None:
    result = apply(solid((0, 0, 255), (100, 80)), filters)
    assert result.mode == mode
    for point in [(0, 0), (99, 0), (0, 79), (99, 79)]:
        assert result.getpixel(point) == corner
    assert pixel(result, (50, 40))[:3] == (0, 0, 255)
    assert pixel(result, (50, 0))[:3] == (0, 0, 255)  # the straight edges are untouched


def test_fill_pads_to_the_requested_box() -> None:
    result = apply(solid((0, 0, 255), (50, 20)), "fill(ff0000)", size=(100, 100))
    assert result.size == (100, 100)
    assert result.mode == "RGB"
    assert result.getpixel((0, 0)) == (255, 0, 0)
    assert result.getpixel((50, 50)) == (0, 0, 255)


def test_fill_keeps_transparency_unless_asked_to_fill_it() -> None:
    image = solid((0, 200, 0, 0), (50, 20))
    kept = apply(image, "fill(red)", size=(100, 100))
    assert kept.getpixel((50, 50)) == (0, 200, 0, 0)
    assert kept.getpixel((0, 0)) == (255, 0, 0, 255)
    filled = apply(image, "fill(red,true)", size=(100, 100))
    assert filled.getpixel((50, 50)) == (255, 0, 0, 255)
    clear = apply(solid((0, 0, 255), (50, 20)), "fill(transparent)", size=(100, 100))
    assert pixel(clear, (0, 0))[3] == 0


def test_fill_auto_uses_the_mean_colour_and_blur_a_blurred_copy() -> None:
    auto = apply(edge(0, 200, (40, 20)), "fill(auto)", size=(100, 100))
    assert auto.getpixel((0, 0)) == (100, 100, 100)
    blurred = apply(edge(0, 200, (40, 20)), "fill(blur)", size=(100, 100))
    assert blurred.size == (100, 100)
    assert 0 < pixel(blurred, (50, 0))[0] < 200


def test_background_color_composites_transparency() -> None:
    image = solid((0, 0, 255, 255), (20, 10))
    image.paste((0, 200, 0, 0), (0, 0, 10, 10))
    result = apply(image, "background_color(ff0000)")
    assert result.getpixel((0, 0)) == (255, 0, 0, 255)
    assert result.getpixel((15, 5)) == (0, 0, 255, 255)
    opaque = solid((1, 2, 3))
    assert apply(opaque, "background_color(red)").tobytes() == opaque.tobytes()


@pytest.mark.parametrize(
    ("filters", "size", "top_left"),
    [
        pytest.param("rotate(90)", (10, 20), (0, 255, 0), id="90-counter-clockwise"),
        pytest.param("rotate(180)", (20, 10), (0, 0, 255), id="180"),
        pytest.param("rotate(-90)", (10, 20), (255, 0, 0), id="minus-90"),
        pytest.param("rotate(360)", (20, 10), (255, 0, 0), id="360"),
        pytest.param("proportion(0.5)", (10, 5), (255, 0, 0), id="proportion"),
    ],
)
def test_rotate_and_proportion(
    filters: str, size: tuple[int, int], top_left: tuple[int, int, int]
) -> None:
    image = Image.new("RGB", (20, 10), (255, 0, 0))
    image.paste((0, 255, 0), (10, 0, 20, 5))
    image.paste((0, 0, 255), (10, 5, 20, 10))
    result = apply(image, filters)
    assert result.size == size
    assert result.getpixel((0, 0)) == top_left


def _mark() -> bytes:
    return png(Image.new("RGBA", (10, 10), (255, 0, 0, 255)))


@pytest.mark.parametrize(
    ("filters", "red", "blue"),
    [
        pytest.param("watermark(m.png,5,5,0)", [(5, 5), (14, 14)], [(4, 4), (15, 15)], id="xy"),
        pytest.param(
            "watermark(m.png,-5,-5,0)", [(85, 45), (94, 54)], [(95, 55), (84, 44)], id="negative"
        ),
        pytest.param(
            "watermark(m.png,center,center,0)", [(45, 25), (54, 34)], [(44, 24)], id="center"
        ),
        pytest.param("watermark(m.png,20p,-0,0)", [(20, 50), (29, 59)], [(20, 49)], id="percent"),
        pytest.param(
            "watermark(m.png,repeat,0,0)", [(0, 0), (95, 5)], [(0, 10), (50, 15)], id="repeat-x"
        ),
        pytest.param("watermark(m.png,0,0,0,50,none)", [(0, 0), (49, 49)], [(50, 0)], id="ratio"),
    ],
)
def test_watermark_positions(
    filters: str, red: list[tuple[int, int]], blue: list[tuple[int, int]]
) -> None:
    result = apply(solid((0, 0, 255), (100, 60)), filters, resources={"m.png": _mark()})
    assert result.mode == "RGB"
    for point in red:
        assert result.getpixel(point) == (255, 0, 0), point
    for point in blue:
        assert result.getpixel(point) == (0, 0, 255), point


def test_watermark_alpha_blends_and_a_missing_resource_is_skipped() -> None:
    image = solid((0, 0, 255), (40, 40))
    half = apply(image, "watermark(m.png,0,0,50)", resources={"m.png": _mark()})
    red, _, blue = pixel(half, (5, 5))
    assert 120 <= red <= 135
    assert 120 <= blue <= 135
    assert apply(image, "watermark(other.png,0,0,0)").tobytes() == image.tobytes()


def test_frame_draws_a_nine_patch_around_the_content() -> None:
    patch = Image.new("RGBA", (9, 9), (0, 0, 0, 0))
    for i in range(1, 8):
        patch.putpixel((i, 0), (0, 0, 0, 255) if i == 4 else (0, 0, 0, 0))
        patch.putpixel((0, i), (0, 0, 0, 255) if i == 4 else (0, 0, 0, 0))
    for i in range(3, 6):  # content box: padding 2 on every side
        patch.putpixel((i, 8), (0, 0, 0, 255))
        patch.putpixel((8, i), (0, 0, 0, 255))
    for x in range(1, 8):
        for y in range(1, 8):
            if x != 4 and y != 4:
                patch.putpixel((x, y), (255, 255, 0, 255))
    result = apply(solid((0, 0, 255), (20, 10)), "frame(f.png)", resources={"f.png": png(patch)})
    assert result.size == (24, 14)
    assert pixel(result, (0, 0))[:3] == (255, 255, 0)
    assert pixel(result, (12, 7))[:3] == (0, 0, 255)


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        pytest.param("quality(0)", lambda o: o.quality == 1, id="quality-clamped"),
        pytest.param("quality(150)", lambda o: o.quality == 100, id="quality-max"),
        pytest.param("format(webp)", lambda o: o.format == "WEBP", id="format"),
        pytest.param("format(bogus)", lambda o: o.format is None, id="format-unknown"),
        pytest.param("max_bytes(5000)", lambda o: o.max_bytes == 5000, id="max_bytes"),
        pytest.param("max_age(60)", lambda o: o.max_age == 60, id="max_age"),
        pytest.param("autojpg()", lambda o: o.auto_png_to_jpg is True, id="autojpg"),
        pytest.param("autojpg(false)", lambda o: o.auto_png_to_jpg is False, id="autojpg-off"),
        pytest.param("strip_icc()", lambda o: o.strip_icc, id="strip_icc"),
    ],
)
def test_option_filters(filters: str, check: Callable[[OutputOptions], bool]) -> None:
    assert check(options(filters))


def test_option_filters_return_a_new_value_and_leave_the_old_one() -> None:
    before = OutputOptions(quality=80)
    bound = bind(parse_filters("quality(10)"), registry=REGISTRY)
    after = apply_options(bound, before)
    assert (before.quality, after.quality) == (80, 10)


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        pytest.param("stretch()", lambda p: p.geometry.stretch, id="stretch"),
        pytest.param(
            "focal(10x20:30x60)",
            lambda p: p.focal_points == (FocalPoint(20, 40, 800, 20, 40, "Explicit"),),
            id="focal",
        ),
    ],
)
def test_plan_filters(filters: str, check: Callable[[RenderPlan], bool]) -> None:
    assert check(planned(filters))


def test_no_upscale_caps_the_box_at_the_source_size() -> None:
    plan = RenderPlan(
        source="", geometry=ResizeRequest(width=500, height=50), oriented_size=(200, 100)
    )
    assert planned("no_upscale()", plan).geometry == ResizeRequest(width=200, height=50)


def test_extract_focal_loads_the_inner_image_and_focuses_on_its_crop() -> None:
    source = "http://thumbs.example.com/unsafe/100x50:300x250/300x200/img.jpg"
    plan = planned("extract_focal()", RenderPlan(source=source, geometry=ResizeRequest()))
    assert plan.source == "img.jpg"
    assert plan.focal_points == (FocalPoint(200, 150, 40000, 200, 200, "Original Extraction"),)


def test_red_eye_neutralises_red_pupils_in_faces() -> None:
    image = solid((120, 110, 100), (40, 40))
    image.paste((220, 30, 30), (12, 10, 16, 14))
    face = FocalPoint(20, 20, 1, 40, 40, "Face Detection")
    plan = RenderPlan(source="", geometry=ResizeRequest(), focal_points=(face,))
    result = apply(image, "red_eye()", plan=plan, map_point=lambda x, y: (x, y))
    assert result.getpixel((13, 11)) == (30, 30, 30)
    assert result.getpixel((2, 2)) == (120, 110, 100)
