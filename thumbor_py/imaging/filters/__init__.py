"""The filter framework: typed URL arguments, phases, registration and application.

A filter is a plain function marked with :func:`image_filter`; its URL arguments are
declared as :class:`Arg` types and arrive parsed, after the leading parameters its phase
gives it. Each phase has one shape, and no filter changes shared state:

* ``pre_load`` and ``after_load``: ``f(plan: RenderPlan, *args) -> RenderPlan`` (the plan
  returned replaces the old one; ``after_load`` plans know the source's size and format);
* ``output``: ``f(options: OutputOptions, *args) -> OutputOptions``;
* ``post_transform``: ``f(image: Image, ctx: FilterContext, *args) -> Image`` (runs once per
  frame of an animation; ``ctx`` is read-only).

A call whose arguments do not match is ignored (as Thumbor does) unless strict mode is on,
and so is an unknown filter name. Marking has no side effect: the registry is built from
the built-in modules (and the plugin functions the assembly resolved) by :func:`build_registry`.
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
from thumbor_py.imaging.geometry import FocalPoint
from thumbor_py.imaging.plan import Budget, OutputOptions, RenderPlan
from thumbor_py.url import FilterCall

__all__ = [
    "BOOLEAN",
    "DECIMAL",
    "IMAGE_URL",
    "NUMBER",
    "PHASES",
    "POSITIVE_NON_ZERO_NUMBER",
    "POSITIVE_NUMBER",
    "STRING",
    "Arg",
    "BoundFilter",
    "FilterContext",
    "FilterSpec",
    "OutputOptions",
    "RenderPlan",
    "apply_options",
    "apply_pixels",
    "apply_plan",
    "bind",
    "build_registry",
    "image_filter",
    "load_plugins",
    "make_spec",
    "spec_of",
]

log = logging.getLogger(__name__)

Phase = Literal["pre_load", "after_load", "output", "post_transform"]
PHASES: tuple[Phase, ...] = ("pre_load", "after_load", "output", "post_transform")
_LEADING = {"pre_load": 1, "after_load": 1, "output": 1, "post_transform": 2}
_SHAPES = {
    "pre_load": "(plan)",
    "after_load": "(plan)",
    "output": "(options)",
    "post_transform": "(image, ctx)",
}
# The longest argument list a filter call may have (the text between its parentheses):
# enough for four curves of 64 points, and a bound on the work of matching it.
MAX_ARGS_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Arg:
    """A typed filter argument: the text it matches and how it is parsed.

    ``regex`` must be unambiguous (one way to match a given text: no ``\\d*\\d*``) so
    that matching stays linear. ``resource`` marks an argument naming another image (a
    watermark, a frame) that the pipeline loads, through the same loader as the source,
    before the render starts.
    """

    regex: str
    parse: Callable[[str], Any]
    resource: bool = False


def _strip_quotes(value: str) -> str:
    return value[1:-1] if len(value) > 2 and value[0] == value[-1] == "'" else value


POSITIVE_NUMBER = Arg(r"\d+", int)
POSITIVE_NON_ZERO_NUMBER = Arg(r"0*[1-9]\d*", int)
NUMBER = Arg(r"-?\d+", int)
DECIMAL = Arg(r"-?(?:\d+(?:\.\d*)?|\.\d+)", float)
BOOLEAN = Arg(r"[Tt]rue|[Ff]alse|1|0", lambda v: v in ("true", "True", "1"))
# Unquoted, a string neither starts nor ends with a space (the separators' ``\s*`` take
# them): one way to match, where Thumbor's lazy ``[^,]+?`` had one per trailing space.
STRING = Arg(r"(?:'.+?')|(?:[^,\s](?:[^,]*[^,\s])?)", _strip_quotes)
IMAGE_URL = Arg(STRING.regex, _strip_quotes, resource=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterContext:
    """What a pixel filter may read besides its image: the plan, the images its arguments
    named, the limits, and (once geometry is done) where source points land in the output.

    Filters that allocate a larger canvas call :meth:`check_canvas` first; long filters may
    call :meth:`checkpoint` between their passes.
    """

    plan: RenderPlan
    budget: Budget
    resources: Mapping[str, bytes] = field(default_factory=dict)
    max_pixels: int = 75_000_000
    max_kernel_size: int = 9
    map_point: Callable[[float, float], tuple[float, float]] | None = None
    # Resources decoded so far in this render (see ``canvas.open_resource``).
    decoded: dict[str, Image.Image] = field(default_factory=dict)

    @property
    def focal_points(self) -> tuple[FocalPoint, ...]:
        """The plan's focal points (explicit, extracted or detected), in source pixels."""
        return self.plan.focal_points

    def requested_size(self, image: Image.Image) -> tuple[int, int]:
        """The box the URL asked for, with 0 (or ``orig``) replaced by ``image``'s side."""
        return self.plan.requested_size(image.size)

    def check_canvas(self, size: tuple[int, int], what: str = "filter output") -> None:
        """Refuse (400) a canvas of ``size`` (per frame) that is over the output budget."""
        self.budget.check_canvas(size, what)

    def checkpoint(self) -> None:
        """Stop (503) when the render's deadline has passed."""
        self.budget.checkpoint()


FilterFunction = Callable[..., Any]


class FilterShapeError(TypeError):
    """A function marked as a filter whose parameters do not fit its phase's shape."""


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """A registered filter: name, phase, argument types and the function.

    ``meta`` filters change the output size (``rotate``, ``proportion``); they also run for
    ``meta/`` requests, on a 1-bit placeholder, so the JSON reports the size they produce.
    ``grows`` filters may enlarge the canvas up to the requested box (``fill``,
    ``upscale``): the output budget is checked for that box before the render starts.
    """

    name: str
    phase: Phase
    args: tuple[Arg, ...]
    required: int
    function: FilterFunction
    pattern: re.Pattern[str]
    meta: bool = False
    grows: bool = False

    def parse(self, call: FilterCall) -> tuple[Any, ...] | None:
        """The parsed arguments of ``call``, or None when they do not match."""
        if call.args is None or len(call.args) > MAX_ARGS_LENGTH:
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
    *args: Arg,
    phase: Phase = "post_transform",
    name: str | None = None,
    meta: bool = False,
    grows: bool = False,
) -> Callable[[FilterFunction], FilterFunction]:
    """Mark a function as a filter; its optional arguments are its defaulted parameters."""

    def mark(function: FilterFunction) -> FilterFunction:
        spec = make_spec(function, args, phase=phase, name=name, meta=meta, grows=grows)
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
    grows: bool = False,
) -> FilterSpec:
    """Describe ``function`` as a filter without registering it."""
    filter_name = name or function.__name__
    params = list(inspect.signature(function).parameters.values())[_LEADING[phase] :]
    if len(params) != len(args):
        raise FilterShapeError(
            f"filter {filter_name}: {len(args)} Arg type(s) for {len(params)} parameter(s) "
            f"after {_SHAPES[phase]}"
        )
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    pattern = _pattern(filter_name, args, required)
    return FilterSpec(filter_name, phase, args, required, function, pattern, meta, grows)


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
    max_filters: int = 0,
) -> tuple[BoundFilter, ...]:
    """Match URL filter calls to registered filters; unknown or malformed ones are dropped.

    More than ``max_filters`` calls (0 = no cap) is a 400, whatever their names: each call
    costs a pass over every frame.
    """
    calls = tuple(calls)
    if max_filters > 0 and len(calls) > max_filters:
        raise FilterArgumentError(
            f"{len(calls)} filters, over the {max_filters}-filter max_filters limit"
        )
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


def apply_plan(
    filters: Iterable[BoundFilter], phase: Phase, plan: RenderPlan, *, strict: bool = False
) -> RenderPlan:
    """The plan after the ``pre_load`` or ``after_load`` filters, in URL order."""
    for item in _of_phase(filters, phase):
        result = _call(item, strict, plan)
        plan = result if isinstance(result, RenderPlan) else plan
    return plan


def apply_options(
    filters: Iterable[BoundFilter], options: OutputOptions, *, strict: bool = False
) -> OutputOptions:
    """The output options after the ``output`` filters, in URL order."""
    for item in _of_phase(filters, "output"):
        result = _call(item, strict, options)
        options = result if isinstance(result, OutputOptions) else options
    return options


def apply_pixels(
    filters: Iterable[BoundFilter],
    image: Image.Image,
    ctx: FilterContext,
    *,
    strict: bool = False,
    meta: bool = False,
) -> Image.Image:
    """``image`` after the ``post_transform`` filters (only the ``meta`` ones when ``meta``).

    The deadline is checked before each filter and the output budget after each one.
    """
    for item in _of_phase(filters, "post_transform"):
        if meta and not item.spec.meta:
            continue
        ctx.checkpoint()
        result = _call(item, strict, image, ctx)
        if isinstance(result, Image.Image):
            image = result
            ctx.check_canvas(image.size, f"{item.spec.name}() output")
    return image


def _of_phase(filters: Iterable[BoundFilter], phase: Phase) -> Iterable[BoundFilter]:
    return (item for item in filters if item.spec.phase == phase)


def _call(item: BoundFilter, strict: bool, *leading: object) -> object:
    """Call one filter. A filter refuses an argument value it cannot use (``rotate(45)``)
    by raising :class:`FilterArgumentError`: the call is skipped (None), as Thumbor does,
    unless strict."""
    try:
        return item.spec.function(*leading, *item.args)
    except FilterArgumentError:
        if strict:
            raise
        log.debug("ignoring filter %s%s: argument refused", item.spec.name, item.args)
        return None
    except (ValueError, OverflowError, ZeroDivisionError, MemoryError) as exc:
        # Hostile or absurd arguments must not become a 500 (nor a silently wrong image
        # cached for a day): answer 400 naming the filter, and keep the trace in the log.
        log.warning("filter %s%s failed", item.spec.name, item.args, exc_info=True)
        raise FilterError(f"filter {item.spec.name}() cannot apply these arguments") from exc
