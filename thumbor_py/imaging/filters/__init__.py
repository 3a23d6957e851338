"""The filter framework: typed URL arguments, phases, registration and application.

A filter is a plain function taking a :class:`RenderState` and its parsed arguments,
marked with :func:`image_filter`. Arguments are declared as :class:`Arg` types; a call whose
arguments do not match is ignored (as Thumbor does) unless strict mode is on, and so is an
unknown filter name. Marking has no side effect: the registry is built from the built-in
modules (and the plugin functions the assembly resolved) by :func:`build_registry`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from PIL import Image

from thumbor_py.errors import FilterArgumentError, FilterError
from thumbor_py.imaging.geometry import FocalPoint, ResizeRequest
from thumbor_py.url import FilterCall

log = logging.getLogger(__name__)

Phase = Literal["pre_load", "after_load", "post_transform"]
PHASES: tuple[Phase, ...] = ("pre_load", "after_load", "post_transform")


@dataclass(frozen=True, slots=True)
class Arg:
    """A typed filter argument: the text it matches and how it is parsed.

    ``resource`` marks an argument naming another image (a watermark, a frame) that the
    pipeline loads, through the same loader as the source, before the render starts.
    """

    regex: str
    parse: Callable[[str], Any]
    resource: bool = False


def _strip_quotes(value: str) -> str:
    return value[1:-1] if len(value) > 2 and value[0] == value[-1] == "'" else value


POSITIVE_NUMBER = Arg(r"[\d]+", int)
POSITIVE_NON_ZERO_NUMBER = Arg(r"[\d]*[1-9][\d]*", int)
NUMBER = Arg(r"[-]?[\d]+", int)
DECIMAL = Arg(r"[-]?(?:(?:[\d]+\.?[\d]*)|(?:[\d]*\.?[\d]+))", float)
BOOLEAN = Arg(r"[Tt]rue|[Ff]alse|1|0", lambda v: v in ("true", "True", "1"))
STRING = Arg(r"(?:'.+?')|(?:[^,]+?)", _strip_quotes)
IMAGE_URL = Arg(STRING.regex, _strip_quotes, resource=True)


@dataclass(slots=True, kw_only=True)
class RenderState:
    """The mutable state of one render that filters read and change.

    Post-transform filters run once per frame of an animation, each time with ``image`` set
    to that frame, so they must only derive the rest of the state from their arguments.
    """

    image: Image.Image | None
    geometry: ResizeRequest
    source_format: str
    quality: int
    format: str | None = None
    focal_points: list[FocalPoint] = field(default_factory=list)
    strip_icc: bool = False
    strip_exif: bool = True
    max_age: int | None = None
    max_bytes: int | None = None
    oriented_size: tuple[int, int] = (0, 0)
    auto_png_to_jpg: bool | None = None
    source: str = ""
    resources: Mapping[str, bytes] = field(default_factory=dict)
    max_pixels: int = 75_000_000
    strict: bool = False
    meta: bool = False
    # Maps a point of the (oriented) source onto the output image, once geometry is done.
    map_point: Callable[[float, float], tuple[float, float]] | None = None

    @property
    def pixels(self) -> Image.Image:
        """The current image; only valid after loading."""
        if self.image is None:
            raise RuntimeError("filter ran before the image was loaded")
        return self.image

    @property
    def requested_size(self) -> tuple[int, int]:
        """The box the URL asked for, with 0 (or ``orig``) replaced by the current size."""
        width, height = self.pixels.size
        req_w, req_h = self.geometry.width, self.geometry.height
        return (
            req_w if isinstance(req_w, int) and req_w > 0 else width,
            req_h if isinstance(req_h, int) and req_h > 0 else height,
        )


FilterFunction = Callable[..., None]


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """A registered filter: name, phase, argument types and the function.

    ``meta`` filters change the output size (``rotate``, ``proportion``); they also run for
    ``meta/`` requests, on a 1-bit placeholder, so the JSON reports the size they produce.
    """

    name: str
    phase: Phase
    args: tuple[Arg, ...]
    required: int
    function: FilterFunction
    pattern: re.Pattern[str]
    meta: bool = False

    def parse(self, call: FilterCall) -> tuple[Any, ...] | None:
        """The parsed arguments of ``call``, or None when they do not match."""
        if call.args is None:
            return None
        # The path arrives still %-encoded (``[`` as ``%5B``); Thumbor matches decoded text.
        match = self.pattern.fullmatch(f"{call.name}({unquote(call.args)})")
        if match is None:
            return None
        values = [v for v in match.groups() if v is not None and v != ""]
        try:
            return tuple(arg.parse(v) for arg, v in zip(self.args, values, strict=False))
        except (ValueError, TypeError, SyntaxError):
            return None


def _pattern(name: str, args: tuple[Arg, ...], required: int) -> re.Pattern[str]:
    parts = []
    for index, arg in enumerate(args):
        comma = "," if index else ""
        optional = "?" if index >= required else ""
        parts.append(rf"(?:{comma}\s*({arg.regex})\s*){optional}")
    return re.compile(rf"{re.escape(name)}\({''.join(parts)}\)", re.DOTALL)


BUILTIN_MODULES: tuple[str, ...] = (
    "thumbor_py.imaging.filters.core",
    "thumbor_py.imaging.filters.color",
    "thumbor_py.imaging.filters.convolve",
    "thumbor_py.imaging.filters.canvas",
    "thumbor_py.imaging.filters.cloudimage",
)
_SPEC_ATTRIBUTE = "__thumbor_filter__"


def image_filter(
    *args: Arg, phase: Phase = "post_transform", name: str | None = None, meta: bool = False
) -> Callable[[FilterFunction], FilterFunction]:
    """Mark a function as a filter; its optional arguments are its defaulted parameters."""

    def mark(function: FilterFunction) -> FilterFunction:
        spec = make_spec(function, args, phase=phase, name=name, meta=meta)
        setattr(function, _SPEC_ATTRIBUTE, spec)
        return function

    return mark


def spec_of(function: object) -> FilterSpec | None:
    """The spec :func:`image_filter` attached to ``function``, if any."""
    spec = getattr(function, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, FilterSpec) else None


def build_registry(extra: Iterable[FilterSpec] = ()) -> dict[str, FilterSpec]:
    """Every built-in filter, then the ``extra`` ones (plugins, which may replace one)."""
    registry: dict[str, FilterSpec] = {}
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            spec = spec_of(value)
            if spec is not None:
                registry[spec.name] = spec
    for spec in extra:
        registry[spec.name] = spec
    return registry


def make_spec(
    function: FilterFunction,
    args: tuple[Arg, ...],
    *,
    phase: Phase,
    name: str | None = None,
    meta: bool = False,
) -> FilterSpec:
    """Describe ``function`` as a filter without registering it."""
    filter_name = name or function.__name__
    params = list(inspect.signature(function).parameters.values())[1:]
    if len(params) != len(args):
        raise TypeError(f"filter {filter_name}: {len(args)} Arg types for {len(params)} parameters")
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    pattern = _pattern(filter_name, args, required)
    return FilterSpec(filter_name, phase, args, required, function, pattern, meta)


@dataclass(frozen=True, slots=True)
class BoundFilter:
    """A filter call from the URL, matched to its spec with parsed arguments."""

    spec: FilterSpec
    args: tuple[Any, ...]

    @property
    def resources(self) -> tuple[str, ...]:
        """The image references among the arguments (see :attr:`Arg.resource`)."""
        return tuple(
            value
            for arg, value in zip(self.spec.args, self.args, strict=False)
            if arg.resource and isinstance(value, str)
        )


def bind(
    calls: Iterable[FilterCall],
    *,
    registry: Mapping[str, FilterSpec],
    allowed: frozenset[str] | None = None,
    strict: bool = False,
) -> tuple[BoundFilter, ...]:
    """Match URL filter calls to registered filters; unknown or malformed ones are dropped."""
    bound = []
    for call in calls:
        spec = registry.get(call.name)
        if spec is None or (allowed is not None and call.name not in allowed):
            continue
        args = spec.parse(call)
        if args is None:
            if strict:
                raise FilterArgumentError(f"filter {call}: arguments do not parse")
            log.debug("ignoring filter %s: arguments do not parse", call)
            continue
        bound.append(BoundFilter(spec, args))
    return tuple(bound)


def run_phase(filters: Iterable[BoundFilter], phase: Phase, state: RenderState) -> None:
    """Run the filters of one phase, in URL order.

    A filter refuses an argument value it cannot use (``rotate(45)``) by raising
    :class:`FilterArgumentError`: the call is skipped, as Thumbor does, unless strict.
    """
    for item in filters:
        if item.spec.phase != phase or (state.meta and phase == PHASES[2] and not item.spec.meta):
            continue
        try:
            item.spec.function(state, *item.args)
        except FilterArgumentError:
            if state.strict:
                raise
            log.debug("ignoring filter %s%s: argument refused", item.spec.name, item.args)
        except (ValueError, OverflowError, ZeroDivisionError, MemoryError) as exc:
            # Hostile or absurd arguments must not become a 500 (nor a silently wrong image
            # cached for a day): answer 400 naming the filter, and keep the trace in the log.
            log.warning("filter %s%s failed", item.spec.name, item.args, exc_info=True)
            raise FilterError(f"filter {item.spec.name}() cannot apply these arguments") from exc
