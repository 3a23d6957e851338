"""Parse Thumbor paths into a frozen :class:`ImageRequest`, and serialise them back.

The grammar is Thumbor's::

    /{unsafe|SIGNATURE}/[debug/][meta/][trim[:top-left|:bottom-right][:TOLERANCE]/]
    [AxB:CxD/][adaptive-][full-]fit-in/][-][W|orig]x[-][H|orig]/[left|center|right/]
    [top|middle|bottom/][smart/][filters:name(args):name(args)/]IMAGE

Parsing works on the raw, still percent-encoded path, exactly what the signature covers.
Every option is optional and must appear in this order; a segment that does not fit the
next expected option starts the image. Like Thumbor's regular expression, an option is
given back to the image when nothing would be left for the image otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from thumbor_py.errors import UrlParseError

Halign = Literal["left", "center", "right"]
Valign = Literal["top", "middle", "bottom"]
TrimCorner = Literal["top-left", "bottom-right"]
Dimension = int | Literal["orig"]

_TRIM = re.compile(r"trim(?::(top-left|bottom-right))?(?::(\d+))?")
_CROP = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
_FIT_IN = re.compile(r"(adaptive-)?(full-)?fit-in")
_SIZE = re.compile(r"(-)?(\d+|orig)?x(-)?(\d+|orig)?")
_HALIGN = ("left", "right", "center")
_VALIGN = ("top", "bottom", "middle")
_FILTERS_PREFIX = "filters:"
SIGNATURE_LENGTH = 28


@dataclass(frozen=True, slots=True)
class Trim:
    """``trim`` option: the corner whose colour is trimmed, and the colour tolerance."""

    corner: TrimCorner = "top-left"
    tolerance: int = 0

    def __str__(self) -> str:
        text = "trim"
        if self.corner != "top-left" or self.tolerance:
            text += f":{self.corner}"
        if self.tolerance:
            text += f":{self.tolerance}"
        return text


@dataclass(frozen=True, slots=True)
class Crop:
    """Manual crop box in source pixels, as ``left x top : right x bottom``."""

    left: int
    top: int
    right: int
    bottom: int

    def __str__(self) -> str:
        return f"{self.left}x{self.top}:{self.right}x{self.bottom}"


@dataclass(frozen=True, slots=True)
class FilterCall:
    """One ``name(args)`` item of the ``filters:`` option; ``args`` is the raw text."""

    name: str
    args: str | None

    def __str__(self) -> str:
        return self.name if self.args is None else f"{self.name}({self.args})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRequest:
    """Everything a Thumbor URL asks for; ``image`` is kept percent-encoded as in the URL."""

    image: str
    unsafe: bool = False
    signature: str | None = None
    debug: bool = False
    meta: bool = False
    trim: Trim | None = None
    crop: Crop | None = None
    fit_in: bool = False
    adaptive: bool = False
    full: bool = False
    width: Dimension = 0
    height: Dimension = 0
    flip_horizontal: bool = False
    flip_vertical: bool = False
    halign: Halign = "center"
    valign: Valign = "middle"
    smart: bool = False
    filters: tuple[FilterCall, ...] = field(default=())

    @property
    def source(self) -> str:
        """The image reference with one level of percent-encoding removed."""
        return unquote(self.image)

    @property
    def path(self) -> str:
        """The canonical path after the signature segment: what a signature signs."""
        return "/".join([*self.option_segments(), self.image])

    def option_segments(self) -> list[str]:
        """The canonical option segments, in Thumbor's order."""
        parts = [name for name, on in (("debug", self.debug), ("meta", self.meta)) if on]
        parts += [str(item) for item in (self.trim, self.crop) if item is not None]
        parts += self._geometry_segments()
        if self.smart:
            parts.append("smart")
        if self.filters:
            parts.append(_FILTERS_PREFIX + ":".join(str(f) for f in self.filters))
        elif (
            not self.smart
            and self.valign == "middle"
            and not self._image_survives(parts)
            and self._image_survives([*parts, "middle"])
        ):
            # An image such as "0x0/a.jpg" (from ".../center/0x0/a.jpg") would be read as an
            # option once the default "center" is dropped: close the options explicitly.
            parts.append("middle")
        return parts

    def _image_survives(self, parts: list[str]) -> bool:
        if "/" not in self.image:
            return True
        return _parse_options("/".join([*parts, self.image]))[1] == self.image

    def _geometry_segments(self) -> list[str]:
        parts: list[str] = []
        if self.fit_in:
            parts.append(
                ("adaptive-" if self.adaptive else "") + ("full-" if self.full else "") + "fit-in"
            )
        if self.width or self.height or self.flip_horizontal or self.flip_vertical:
            h_flip = "-" if self.flip_horizontal else ""
            v_flip = "-" if self.flip_vertical else ""
            parts.append(f"{h_flip}{self.width}x{v_flip}{self.height}")
        if self.halign != "center":
            parts.append(self.halign)
        if self.valign != "middle":
            parts.append(self.valign)
        return parts


def serialise(request: ImageRequest) -> str:
    """The canonical URL path of ``request``, including its ``/unsafe/`` or signature."""
    head = "unsafe" if request.unsafe else (request.signature or "")
    return f"/{head}/{request.path}"


def parse(raw_path: str) -> ImageRequest:
    """Parse a raw (percent-encoded) Thumbor path; raise :class:`UrlParseError` if it can't."""
    path = raw_path[1:] if raw_path.startswith("/") else raw_path
    first, slash, rest = path.partition("/")
    if not slash or not first or not rest:
        raise UrlParseError(
            "not a Thumbor URL: expected /unsafe/OPTIONS/IMAGE or /SIGNATURE/OPTIONS/IMAGE"
        )
    unsafe = first == "unsafe"
    options, image = _parse_options(rest)
    if unsafe:
        return ImageRequest(image=image, unsafe=True, **options)
    return ImageRequest(image=image, signature=unquote(first), **options)


def split_signed_path(raw_path: str) -> tuple[str, str]:
    """Split ``/SIGNATURE/rest`` into the signature segment and the raw signed text."""
    path = raw_path[1:] if raw_path.startswith("/") else raw_path
    first, _, rest = path.partition("/")
    return first, rest


_Stage = Callable[[str, dict[str, Any]], bool]


def _flag(name: str) -> _Stage:
    """The stage of a bare keyword segment (``debug``, ``meta``, ``smart``)."""

    def stage(seg: str, out: dict[str, Any]) -> bool:
        if seg != name:
            return False
        out[name] = True
        return True

    return stage


def _stage_trim(seg: str, out: dict[str, Any]) -> bool:
    match = _TRIM.fullmatch(seg)
    if not match:
        return False
    corner_text, tolerance_text = match.groups()
    if corner_text is None and tolerance_text is not None:
        # Thumbor splits ``trim:N`` on ":" and takes "N" as the corner; its C code treats any
        # corner but "top-left" as bottom-right, so this is bottom-right with no tolerance.
        out["trim"] = Trim("bottom-right", 0)
        return True
    corner: TrimCorner = "bottom-right" if corner_text == "bottom-right" else "top-left"
    out["trim"] = Trim(corner, int(tolerance_text) if tolerance_text else 0)
    return True


def _stage_crop(seg: str, out: dict[str, Any]) -> bool:
    match = _CROP.fullmatch(seg)
    if not match:
        return False
    left, top, right, bottom = (int(g) for g in match.groups())
    if left or top or right or bottom:
        out["crop"] = Crop(left, top, right, bottom)
    return True


def _stage_fit_in(seg: str, out: dict[str, Any]) -> bool:
    match = _FIT_IN.fullmatch(seg)
    if not match:
        return False
    out.update(fit_in=True, adaptive=bool(match.group(1)), full=bool(match.group(2)))
    return True


def _dimension(text: str | None) -> Dimension:
    if text == "orig":
        return "orig"
    return int(text) if text else 0


def _stage_size(seg: str, out: dict[str, Any]) -> bool:
    match = _SIZE.fullmatch(seg)
    if not match:
        return False
    h_flip, width, v_flip, height = match.groups()
    out.update(
        width=_dimension(width),
        height=_dimension(height),
        flip_horizontal=bool(h_flip),
        flip_vertical=bool(v_flip),
    )
    return True


def _stage_halign(seg: str, out: dict[str, Any]) -> bool:
    if seg not in _HALIGN:
        return False
    out["halign"] = seg
    return True


def _stage_valign(seg: str, out: dict[str, Any]) -> bool:
    if seg not in _VALIGN:
        return False
    out["valign"] = seg
    return True


_STAGES: tuple[_Stage, ...] = (
    _flag("debug"),
    _flag("meta"),
    _stage_trim,
    _stage_crop,
    _stage_fit_in,
    _stage_size,
    _stage_halign,
    _stage_valign,
    _flag("smart"),
)


def _parse_options(rest: str) -> tuple[dict[str, Any], str]:
    """Consume option segments in order; return the options and the image part."""
    out: dict[str, Any] = {}
    consumed: list[tuple[int, dict[str, Any]]] = []
    pos = 0
    for stage in _STAGES:
        end = rest.find("/", pos)
        if end < 0:
            break
        before = dict(out)
        if stage(rest[pos:end], out):
            consumed.append((pos, before))
            pos = end + 1
    pos = _parse_filters(rest, pos, out, consumed)
    if pos >= len(rest) and consumed:
        # Nothing left for the image: hand the last option back, as Thumbor's regex does.
        pos, out = consumed[-1]
    image = rest[pos:]
    if not image:
        raise UrlParseError("no original image was specified in the URL")
    return out, image


def _parse_filters(
    rest: str, pos: int, out: dict[str, Any], consumed: list[tuple[int, dict[str, Any]]]
) -> int:
    if not rest.startswith(_FILTERS_PREFIX, pos):
        return pos
    # Filter arguments may contain slashes (watermark URLs): the option ends at the first ")/".
    end = rest.find(")/", pos + len(_FILTERS_PREFIX) + 1)
    if end < 0:
        return pos
    consumed.append((pos, dict(out)))
    out["filters"] = parse_filters(rest[pos + len(_FILTERS_PREFIX) : end + 1])
    return end + 2


def parse_filters(text: str) -> tuple[FilterCall, ...]:
    """Split ``a(1):b(x,y)`` into filter calls, the way Thumbor splits on ``"):"``."""
    calls: list[FilterCall] = []
    parts = text.split("):")
    for index, part in enumerate(parts):
        if index != len(parts) - 1:
            part += ")"
        name, paren, args = part.partition("(")
        # A part without "(" names no filter Thumbor knows; keep it verbatim so it round-trips.
        calls.append(FilterCall(name, args[:-1]) if paren else FilterCall(part, None))
    return tuple(calls)
