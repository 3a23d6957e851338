"""The filter framework: typed URL arguments, phases, registration and application.

A filter is a plain function taking a :class:`RenderState` and its parsed arguments,
marked with :func:`image_filter`. Arguments are declared as :class:`Arg` types; a call whose
arguments do not match is ignored (as Thumbor does) unless strict mode is on, and so is an
unknown filter name. Marking has no side effect: the registry is built from the built-in
modules (and plugin functions named in the config) by :func:`build_registry`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from thumbor_py.errors import FilterArgumentError
from thumbor_py.imaging.geometry import FocalPoint, ResizeRequest
from thumbor_py.url import FilterCall

log = logging.getLogger(__name__)

Phase = Literal["pre_load", "after_load", "post_transform"]
PHASES: tuple[Phase, ...] = ("pre_load", "after_load", "post_transform")


@dataclass(frozen=True, slots=True)
class Arg:
    """A typed filter argument: the text it matches and how it is parsed."""

    regex: str
    parse: Callable[[str], Any]


def _strip_quotes(value: str) -> str:
    return value[1:-1] if len(value) > 2 and value[0] == value[-1] == "'" else value


POSITIVE_NUMBER = Arg(r"[\d]+", int)
POSITIVE_NON_ZERO_NUMBER = Arg(r"[\d]*[1-9][\d]*", int)
NUMBER = Arg(r"[-]?[\d]+", int)
DECIMAL = Arg(r"[-]?(?:(?:[\d]+\.?[\d]*)|(?:[\d]*\.?[\d]+))", float)
BOOLEAN = Arg(r"[Tt]rue|[Ff]alse|1|0", lambda v: v in ("true", "True", "1"))
STRING = Arg(r"(?:'.+?')|(?:[^,]+?)", _strip_quotes)


@dataclass(slots=True, kw_only=True)
class RenderState:
    """The mutable state of one render that filters read and change."""

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

    @property
    def pixels(self) -> Image.Image:
        """The current image; only valid after loading."""
        if self.image is None:
            raise RuntimeError("filter ran before the image was loaded")
        return self.image


FilterFunction = Callable[..., None]


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """A registered filter: name, phase, argument types and the function."""

    name: str
    phase: Phase
    args: tuple[Arg, ...]
    required: int
    function: FilterFunction
    pattern: re.Pattern[str]

    def parse(self, call: FilterCall) -> tuple[Any, ...] | None:
        """The parsed arguments of ``call``, or None when they do not match."""
        if call.args is None:
            return None
        match = self.pattern.fullmatch(f"{call.name}({call.args})")
        if match is None:
            return None
        return tuple(arg.parse(v) for arg, v in zip(self.args, match.groups(), strict=True) if v)


def _pattern(name: str, args: tuple[Arg, ...], required: int) -> re.Pattern[str]:
    parts = []
    for index, arg in enumerate(args):
        comma = "," if index else ""
        optional = "?" if index >= required else ""
        parts.append(rf"(?:{comma}\s*({arg.regex})\s*){optional}")
    return re.compile(rf"{re.escape(name)}\({''.join(parts)}\)", re.DOTALL)


BUILTIN_MODULES: tuple[str, ...] = ("thumbor_py.imaging.filters.core",)
_SPEC_ATTRIBUTE = "__thumbor_filter__"


def image_filter(
    *args: Arg, phase: Phase = "post_transform", name: str | None = None
) -> Callable[[FilterFunction], FilterFunction]:
    """Mark a function as a filter; its optional arguments are its defaulted parameters."""

    def mark(function: FilterFunction) -> FilterFunction:
        setattr(function, _SPEC_ATTRIBUTE, make_spec(function, args, phase=phase, name=name))
        return function

    return mark


def spec_of(function: object) -> FilterSpec | None:
    """The spec :func:`image_filter` attached to ``function``, if any."""
    spec = getattr(function, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, FilterSpec) else None


def build_registry(extra: Iterable[FilterSpec] = ()) -> dict[str, FilterSpec]:
    """Every built-in filter, then ``extra`` ones (which may replace a built-in)."""
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
    function: FilterFunction, args: tuple[Arg, ...], *, phase: Phase, name: str | None = None
) -> FilterSpec:
    """Describe ``function`` as a filter without registering it."""
    filter_name = name or function.__name__
    params = list(inspect.signature(function).parameters.values())[1:]
    if len(params) != len(args):
        raise TypeError(f"filter {filter_name}: {len(args)} Arg types for {len(params)} parameters")
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    return FilterSpec(
        filter_name, phase, args, required, function, _pattern(filter_name, args, required)
    )


@dataclass(frozen=True, slots=True)
class BoundFilter:
    """A filter call from the URL, matched to its spec with parsed arguments."""

    spec: FilterSpec
    args: tuple[Any, ...]


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
    """Run the filters of one phase, in URL order."""
    for item in filters:
        if item.spec.phase == phase:
            item.spec.function(state, *item.args)


def has_phase(filters: Iterable[BoundFilter], phase: Phase) -> bool:
    """Whether any filter runs in ``phase``."""
    return any(item.spec.phase == phase for item in filters)
