"""Filters whose cost is bounded: C blur and convolution that look like Thumbor's, NumPy
filters in strips that give the same pixels as one pass, caps on kernels and nine-patches."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from thumbor_py.errors import FilterError, ImageTooLargeError
from thumbor_py.imaging import formats, pixels
from thumbor_py.imaging.filters import FilterContext, RenderPlan, apply_pixels, bind
from thumbor_py.imaging.filters import build_registry as registry
from thumbor_py.imaging.filters.convolve import _sharpen
from thumbor_py.imaging.geometry import ResizeRequest
from thumbor_py.imaging.plan import Budget
from thumbor_py.url import parse_filters

REGISTRY = registry()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    return Image.effect_noise(size, 60).convert(mode)


def context(**changes: object) -> FilterContext:
    plan = RenderPlan(source="", geometry=ResizeRequest())
    defaults: dict[str, object] = {"plan": plan, "budget": Budget(max_output_pixels=10**8)}
    return FilterContext(**{**defaults, **changes})  # type: ignore[arg-type]


def run(image: Image.Image, filters: str, ctx: FilterContext | None = None) -> Image.Image:
    bound = bind(parse_filters(filters), registry=REGISTRY)
    return apply_pixels(bound, image, ctx or context(), strict=True)


def thumbor_convolve(image: Image.Image, kernel: npt.NDArray[np.float64]) -> Image.Image:
    """Thumbor's convolution, one NumPy pass per tap (the reference the C path matches)."""
    values = pixels.to_array(pixels.as_rgb(image))
    out = pixels.convolve(values, kernel, lambda: None)
    return pixels.from_array(out, pixels.as_rgb(image).mode)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def photo() -> Image.Image:
    """A smooth picture with edges: a gradient with a few solid shapes."""
    image = Image.linear_gradient("L").resize((240, 160)).convert("RGB")
    image.paste((220, 40, 40), (20, 20, 100, 80))
    image.paste((30, 200, 90), (120, 50, 220, 140))
    return image


@pytest.mark.parametrize(
    ("radius", "sigma", "tolerance"),
    [
        pytest.param(1, 0.0, 1.0, id="1"),
        pytest.param(2, 0.0, 1.0, id="2"),
        pytest.param(3, 0.0, 1.0, id="3"),
        pytest.param(8, 2.0, 1.0, id="8-2"),
        pytest.param(30, 0.0, 2.5, id="30"),
    ],
)
def test_c_blur_looks_like_thumbors_kernel(radius: int, sigma: float, tolerance: float) -> None:
    image = photo()
    weights = pixels.gaussian_kernel(radius, sigma or float(radius))
    reference = thumbor_convolve(image, weights.reshape(1, -1))
    reference = thumbor_convolve(reference, weights.reshape(-1, 1))
    blurred = run(image, f"blur({radius},{sigma})" if sigma else f"blur({radius})")
    assert mean_difference(blurred, reference) < tolerance


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param([[1, 2, 1], [2, 4, 2], [1, 2, 1]], id="3x3"),
        pytest.param([[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]], id="3x3-sharpen"),
        pytest.param([[1, 0, 2]], id="1x3"),
        pytest.param([[1, 1, 1, 1, 1]] * 3, id="3x5"),
    ],
)
def test_c_convolution_gives_thumbors_pixels(kernel: list[list[int]]) -> None:
    image = noise((40, 30), "RGBA")
    matrix = np.array(kernel, dtype=np.float64)
    total = matrix.sum()
    normalised = matrix / total if total else matrix
    reference = thumbor_convolve(image, normalised)
    text = ";".join(str(v) for row in kernel for v in row)
    result = run(image, f"convolution({text},{len(kernel[0])},true)")
    assert np.abs(np.asarray(result, int) - np.asarray(reference, int)).max() <= 1


def test_a_kernel_over_5x5_takes_the_numpy_path_within_its_work_cap() -> None:
    seven = ";".join(["1"] * 49)
    small = noise((60, 40))
    result = run(small, f"convolution({seven},7)")
    reference = thumbor_convolve(small, np.full((7, 7), 1 / 49))
    assert np.abs(np.asarray(result, int) - np.asarray(reference, int)).max() <= 1
    big = Image.new("RGB", (1000, 1000))
    with pytest.raises(FilterError, match="over the work limit"):
        run(big, f"convolution({seven},7)")


def test_kernels_over_max_kernel_size_are_refused() -> None:
    nine = ";".join(["1"] * 81)
    with pytest.raises(FilterError, match="7x7 max_kernel_size"):
        run(noise((20, 20)), f"convolution({nine},9)", context(max_kernel_size=7))


@pytest.mark.parametrize("luminance_only", [True, False])
def test_sharpen_in_strips_gives_the_pixels_of_one_pass(
    luminance_only: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = noise((120, 700))
    whole = _sharpen(image, 2.0, 1.0, luminance_only)
    monkeypatch.setattr(pixels, "STRIP_PIXELS", 120 * 64)  # eleven strips
    strips = run(image, f"sharpen(2,1,{str(luminance_only).lower()})")
    assert strips.tobytes() == whole.tobytes()


def test_strips_need_their_support() -> None:
    image = noise((100, 400))
    whole = _sharpen(image, 2.0, 1.0, False)
    short = pixels.STRIP_PIXELS
    pixels.STRIP_PIXELS = 100 * 64
    try:
        strips = pixels.in_strips(image, lambda p: _sharpen(p, 2.0, 1.0, False), support=8)
    finally:
        pixels.STRIP_PIXELS = short
    assert strips.tobytes() != whole.tobytes()  # so the equality above is no accident


def test_checkpoint_runs_between_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pixels, "STRIP_PIXELS", 50 * 64)
    calls: list[int] = []
    pixels.in_strips(noise((50, 640)), lambda p: p, checkpoint=lambda: calls.append(1))
    assert len(calls) == 10


def test_a_striped_nine_patch_is_refused() -> None:
    patch = Image.new("RGBA", (200, 200), (255, 255, 255, 255))
    for i in range(1, 199, 2):  # alternate stretchy and fixed on both edges
        patch.putpixel((i, 0), (0, 0, 0, 255))
        patch.putpixel((0, i), (0, 0, 0, 255))
    buffer = io.BytesIO()
    patch.save(buffer, "PNG")
    ctx = context(resources={"p.png": buffer.getvalue()})
    with pytest.raises(FilterError, match="nine-patch cells"):
        run(noise((30, 30)), "frame(p.png)", ctx)


def test_frame_is_refused_before_it_allocates_over_the_budget() -> None:
    patch = Image.new("RGBA", (101, 101), (255, 255, 255, 255))
    for marker in ((50, 0), (0, 50), (50, 100), (100, 50)):
        patch.putpixel(marker, (0, 0, 0, 255))
    buffer = io.BytesIO()
    patch.save(buffer, "PNG")
    ctx = context(resources={"p.png": buffer.getvalue()}, budget=Budget(max_output_pixels=20_000))
    assert run(noise((10, 10)), "frame(p.png)", ctx).size == (108, 108)
    with pytest.raises(ImageTooLargeError, match="frame"):
        run(noise((10, 10)), "frame(p.png):frame(p.png)", ctx)


def test_a_resource_is_decoded_once_per_render() -> None:
    mark = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    buffer = io.BytesIO()
    mark.save(buffer, "PNG")
    budget = Budget(max_output_pixels=10**8, frames=3)
    ctx = context(resources={"m.png": buffer.getvalue()}, budget=budget)
    for _ in range(3):  # three frames of one animation share the context
        run(noise((20, 20)), "watermark(m.png,0,0,0)", ctx)
    assert list(ctx.decoded) == ["m.png"]


def test_round_corner_with_a_huge_radius_keeps_a_small_mask() -> None:
    image = Image.new("RGB", (3000, 2000), (0, 0, 255))
    result = run(image, "round_corner(1500|1000,255,0,0)")
    assert result.getpixel((0, 0)) == (255, 0, 0)
    assert result.getpixel((1500, 1000)) == (0, 0, 255)


def _zlib_level(png_data: bytes) -> int:
    """The FLEVEL bits of the first IDAT's zlib header (0: fastest ... 3: maximum)."""
    start = png_data.index(b"IDAT") + 4
    return png_data[start + 1] >> 6


@pytest.mark.parametrize(("side", "level"), [(1000, 2), (2100, 0)])
def test_large_pngs_are_compressed_fast(side: int, level: int) -> None:
    image = Image.new("RGB", (side, side), (10, 20, 30))
    data = formats.encode(image, formats.EncodeOptions(format="PNG", quality=80))
    assert _zlib_level(data) == level
    assert Image.open(io.BytesIO(data)).getpixel((side - 1, side - 1)) == (10, 20, 30)
