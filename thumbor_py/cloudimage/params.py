"""Cloudimage operations and filters mapped onto the Thumbor options of an ``ImageRequest``.

Pure: the parameters (already split from the origin and decoded) in, the request out. Values
that do not parse are ignored, as Cloudimage ignores what it does not understand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from PIL import ImageColor

from thumbor_py.url import Crop, FilterCall, ImageRequest, Trim

Params = Mapping[str, str]
_INT = re.compile(r"\d{1,6}")
_SIGNED = re.compile(r"-?\d{1,4}")
_NUMBER = re.compile(r"\d{1,3}(?:\.\d{1,4})?|\.\d{1,4}")
# Focal point: pixels, percent of the source (p, %, or s: of the resized image, the same
# fraction for a proportional resize) or a 0..1 fraction (c).
_POINT = re.compile(r"(\d{1,6}(?:\.\d{1,4})?)([psc%]?),(\d{1,6}(?:\.\d{1,4})?)([psc%]?)")
_COLOR = re.compile(r"#?[0-9A-Fa-f]{3,8}|[A-Za-z]{1,30}")
# Compass gravity: (halign, valign).
_COMPASS = {
    "north": ("center", "top"),
    "south": ("center", "bottom"),
    "east": ("right", "middle"),
    "west": ("left", "middle"),
    "northeast": ("right", "top"),
    "northwest": ("left", "top"),
    "southeast": ("right", "bottom"),
    "southwest": ("left", "bottom"),
    "center": ("center", "middle"),
    "centre": ("center", "middle"),
}
_FORMATS = {name: name for name in ("jpeg", "png", "webp", "avif", "gif")} | {"jpg": "jpeg"}
FUNCS = ("crop", "fit", "cropfit", "bound", "boundmin", "cover", "face")
MAX_SIZE = 10_000


def _int(params: Params, *names: str) -> int | None:
    for name in names:
        value = params.get(name)
        if value is not None and _INT.fullmatch(value):
            return min(int(value), MAX_SIZE)
    return None


def dpr_of(params: Params, max_dpr: float) -> float:
    """The ``dpr`` factor, clamped to ``(0, max_dpr]``; 1 when absent or malformed."""
    value = params.get("dpr", "")
    if not _NUMBER.fullmatch(value) or float(value) <= 0:
        return 1.0
    return min(float(value), max_dpr)


def size_of(params: Params, max_dpr: float) -> tuple[int, int]:
    """``w``/``h`` times ``dpr``, rounded up (0 = not given)."""
    dpr = dpr_of(params, max_dpr)
    width = _int(params, "w", "width") or 0
    height = _int(params, "h", "height") or 0
    return (min(math.ceil(width * dpr), MAX_SIZE), min(math.ceil(height * dpr), MAX_SIZE))


def build_request(image: str, params: Params, *, max_dpr: float = 4.0) -> ImageRequest:
    """The ``ImageRequest`` for origin ``image`` (percent-encoded as Thumbor's) and ``params``."""
    width, height = size_of(params, max_dpr)
    options: dict[str, Any] = {"width": width, "height": height}
    filters: list[FilterCall] = []
    func = params.get("func", "crop")
    if func not in FUNCS:
        func = "crop"
    _gravity(params.get("gravity", ""), func, options, filters)
    if width and height:
        _FUNCTIONS[func](params, options, filters)
    _crop_box(params, options)
    _flip(params.get("flip", ""), options)
    trim = _int(params, "trim")
    if trim is not None:
        options["trim"] = Trim("top-left", trim)
    if params.get("org_if_sml") == "1":
        filters.insert(0, FilterCall("ci_org_if_sml", ""))
    filters += _adjustments(params)
    return ImageRequest(image=image, filters=tuple(filters), **options)


def _gravity(value: str, func: str, options: dict[str, Any], filters: list[FilterCall]) -> None:
    value = value.lower()
    if value in _COMPASS:
        options["halign"], options["valign"] = _COMPASS[value]
    elif value in ("auto", "smart", "face") or func == "face":
        options["smart"] = True
    point = _POINT.fullmatch(value)
    if point is not None:
        x, x_unit, y, y_unit = point.groups()
        focus = f"{_coordinate(x, x_unit)},{_coordinate(y, y_unit)}"
        filters.append(FilterCall("ci_focus", focus))
        options["smart"] = True


def _coordinate(number: str, unit: str) -> str:
    """``ci_focus``'s form: whole source pixels, or a percentage with a ``p`` suffix."""
    if unit == "c":
        return f"{min(float(number) * 100, 100.0):g}p"
    if unit:
        return f"{min(float(number), 100.0):g}p"
    return str(int(float(number)))


def _fit(params: Params, options: dict[str, Any], filters: list[FilterCall]) -> None:
    options["fit_in"] = True
    if params.get("fit_enlarge") == "1":
        filters.append(FilterCall("upscale", ""))
    filters.append(FilterCall("ci_fit", f"{_bg_color(params)},{_placement(options)}"))


def _cropfit(params: Params, options: dict[str, Any], filters: list[FilterCall]) -> None:
    filters.append(FilterCall("ci_cropfit", ""))
    filters.append(FilterCall("ci_fit", f"{_bg_color(params)},{_placement(options)}"))


def _bound(_params: Params, options: dict[str, Any], _filters: list[FilterCall]) -> None:
    options["fit_in"] = True


def _boundmin(_params: Params, options: dict[str, Any], _filters: list[FilterCall]) -> None:
    options.update(fit_in=True, full=True)


def _cover(_params: Params, _options: dict[str, Any], filters: list[FilterCall]) -> None:
    filters.append(FilterCall("stretch", ""))


def _crop(_params: Params, _options: dict[str, Any], _filters: list[FilterCall]) -> None:
    """Thumbor's default: resize to cover the box, crop the overflow (by gravity)."""


_FUNCTIONS: dict[str, Callable[[Params, dict[str, Any], list[FilterCall]], None]] = {
    "crop": _crop,
    "face": _crop,
    "fit": _fit,
    "cropfit": _cropfit,
    "bound": _bound,
    "boundmin": _boundmin,
    "cover": _cover,
}


def _bg_color(params: Params) -> str:
    color = params.get("bg_color") or params.get("bg_colour") or "ffffff"
    if color == "auto" or _COLOR.fullmatch(color):
        return color.lstrip("#")
    return "ffffff"


def _placement(options: dict[str, Any]) -> str:
    halign, valign = options.get("halign", "center"), options.get("valign", "middle")
    return f"{halign}-{valign}"


def _crop_box(params: Params, options: dict[str, Any]) -> None:
    top_left = _pair(params.get("tl_px"))
    bottom_right = _pair(params.get("br_px"))
    if top_left is None and bottom_right is None:
        return
    left, top = top_left or (0, 0)
    right, bottom = bottom_right or (MAX_SIZE * 10, MAX_SIZE * 10)
    if right > left and bottom > top:
        options["crop"] = Crop(left, top, right, bottom)


def _pair(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    first, comma, second = value.partition(",")
    if not comma or not _INT.fullmatch(first) or not _INT.fullmatch(second):
        return None
    return int(first), int(second)


def _flip(value: str, options: dict[str, Any]) -> None:
    if value in ("h", "hv", "vh"):
        options["flip_horizontal"] = True
    if value in ("v", "hv", "vh"):
        options["flip_vertical"] = True


def _adjustments(params: Params) -> list[FilterCall]:
    """Rotation, corners, encoding and the colour filters, in a fixed order."""
    calls: list[FilterCall] = []
    for name, make in _ADJUSTMENTS:
        value = params.get(name)
        if value is not None:
            call = make(value, params)
            if call is not None:
                calls.append(call)
    return calls


def _signed(value: str, low: int, high: int) -> int | None:
    if not _SIGNED.fullmatch(value):
        return None
    return min(max(int(value), low), high)


def _rotate(value: str, _params: Params) -> FilterCall | None:
    angle = _signed(value, -360, 360)
    if not angle:
        return None
    if angle % 90 == 0:
        return FilterCall("rotate", str(angle))
    return FilterCall("ci_rotate", f"{angle},{_bg_color(_params)}")


def _radius(value: str, params: Params) -> FilterCall | None:
    radius = _int({"r": value}, "r")
    if not radius:
        return None
    red, green, blue = _rgb(_bg_color(params)) if _has_bg(params) else (255, 255, 255)
    transparent = "" if _has_bg(params) else ",true"
    return FilterCall("round_corner", f"{radius},{red},{green},{blue}{transparent}")


def _has_bg(params: Params) -> bool:
    return bool(params.get("bg_color") or params.get("bg_colour"))


def _rgb(color: str) -> tuple[int, int, int]:
    """A hex code or CSS colour name as RGB; white when it is neither (or ``auto``)."""
    for candidate in (f"#{color}", color):
        try:
            red, green, blue, *_ = ImageColor.getrgb(candidate)
        except ValueError:
            continue
        return red, green, blue
    return 255, 255, 255


def _quality(value: str, _params: Params) -> FilterCall | None:
    quality = _int({"q": value}, "q")
    return None if not quality else FilterCall("quality", str(min(quality, 100)))


def _force_format(value: str, _params: Params) -> FilterCall | None:
    for name in value.lower().split(","):
        if name in _FORMATS:
            return FilterCall("format", _FORMATS[name])
    return None


def _sharp(value: str, _params: Params) -> FilterCall | None:
    strength = _int({"s": value}, "s")
    if not strength:
        return None
    amount = min(1.0 + strength / 25, 5.0)
    return FilterCall("sharpen", f"{amount:g},1.0,true")


def _bright(value: str, _params: Params) -> FilterCall | None:
    amount = _signed(value, -100, 100)
    return None if amount is None else FilterCall("brightness", str(amount))


def _contrast(value: str, _params: Params) -> FilterCall | None:
    amount = _signed(value, -100, 100)
    return None if amount is None else FilterCall("contrast", str(amount))


def _saturate(value: str, _params: Params) -> FilterCall | None:
    amount = _signed(value, -100, 100)
    return None if amount is None else FilterCall("saturation", f"{1 + amount / 100:g}")


def _grey(value: str, _params: Params) -> FilterCall | None:
    return FilterCall("grayscale", "") if value == "1" else None


def _blur(value: str, _params: Params) -> FilterCall | None:
    radius = _int({"b": value}, "b")
    return None if not radius else FilterCall("blur", str(min(radius, 100)))


def _pix(value: str, _params: Params) -> FilterCall | None:
    size = _int({"p": value}, "p")
    return None if not size else FilterCall("pixelate", str(min(size, 100)))


_Make = Callable[[str, Params], FilterCall | None]
_ADJUSTMENTS: tuple[tuple[str, _Make], ...] = (
    ("r", _rotate),
    ("bright", _bright),
    ("brightness", _bright),
    ("contrast", _contrast),
    ("saturate", _saturate),
    ("saturation", _saturate),
    ("grey", _grey),
    ("gray", _grey),
    ("greyscale", _grey),
    ("grayscale", _grey),
    ("blur", _blur),
    ("pix", _pix),
    ("pixelate", _pix),
    ("sharp", _sharp),
    ("sharpen", _sharp),
    ("radius", _radius),
    ("q", _quality),
    ("force_format", _force_format),
)
