"""Extension points as Protocols, the values they exchange, and the resolver that builds them.

A plugin is a class with a nested frozen ``Settings`` dataclass (its YAML ``settings:``
section) and a constructor ``__init__(self, settings, context: PluginContext)``. Built-in
plugins are named by alias (``file``); anything else by ``module:Class``. Resolution happens
once at start-up; any failure is a :class:`ConfigError` naming the YAML key.

Plugins holding long-lived clients also implement :class:`Lifecycle`: ``start`` runs once per
process before the first request and ``aclose`` once at shutdown.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from thumbor_py.config import PluginConfig
from thumbor_py.config_schema import build
from thumbor_py.errors import ConfigError
from thumbor_py.imaging.detection import Detector as Detector


@dataclass(frozen=True, slots=True)
class Source:
    """An original image as a loader returns it."""

    data: bytes
    content_type: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    # The original's canonical name (every spelling of it gives the same) and its version
    # (ETag, size+mtime, Last-Modified), for cache coherence (thumbor_py/coherence.py).
    identity: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What the server shares with every plugin: limits and an executor for blocking calls."""

    max_source_bytes: int
    executor: Executor | None = None


@runtime_checkable
class Loader(Protocol):
    """Fetches an original image.

    ``load`` returns a :class:`Source` or raises one of ``SourceNotFoundError`` (404),
    ``SourceForbiddenError`` (400), ``SourceTooLargeError`` (400), ``UpstreamError`` (502)
    or ``UpstreamTimeoutError`` (504). It never returns an error value. Blocking work (file
    reads, SDK calls) must run off the event loop.
    """

    async def load(self, source: str) -> Source:
        """Load ``source`` (the image part of the URL, percent-decoded once)."""
        ...


@runtime_checkable
class BlockingLoader(Protocol):
    """A loader whose read is cheap, local and blocking (the file loader): the pipeline
    calls ``read_blocking`` on the render thread, right before the decode, so a request
    takes one thread hand-off instead of two. Same answers and errors as ``load``."""

    def read_blocking(self, source: str) -> Source:
        """Read ``source`` on the calling (never the event loop's) thread."""
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """Optional: set up and tear down long-lived clients once per process."""

    async def start(self) -> None:
        """Create clients; called before the first request."""
        ...

    async def aclose(self) -> None:
        """Close clients; called once at shutdown."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResult:
    """A rendered variant as a result storage records it (the body is read separately)."""

    path: str
    source: str
    content_type: str
    etag: str
    size: int
    width: int
    height: int
    created_at: datetime
    expires_at: datetime | None = None
    max_age: int | None = None
    object_key: str | None = None
    url: str | None = None


@runtime_checkable
class ResultStorage(Protocol):
    """Stores rendered variants by result key, so repeat requests skip load and render.

    ``get`` returns the metadata only (``None`` on a miss or when expired) and never decodes
    anything; ``read`` returns the body, or ``None`` when the object turned out to be missing
    (the storage then forgets the metadata itself; a read error that is not "missing" or
    "corrupt" raises and deletes nothing). ``put`` leaves no object that ``purge`` cannot
    find, even when it fails half-way. ``purge`` deletes every variant of a source and
    returns how many. Backend failures raise :class:`~thumbor_py.errors.StorageError` (or
    ``OSError``/``TimeoutError``); the guard degrades them to rendering without storing, and
    logs anything else as a bug.
    """

    async def get(self, key: str) -> StoredResult | None:
        """The metadata stored under ``key``, or None."""
        ...

    async def read(self, key: str, result: StoredResult) -> bytes | None:
        """The body of a variant ``get`` returned, or None if it vanished."""
        ...

    async def put(self, key: str, result: StoredResult, data: bytes) -> None:
        """Store a variant (the object and its metadata)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget one variant (missing is fine)."""
        ...

    async def purge(self, source: str) -> int:
        """Delete every stored variant of ``source``; return how many were deleted."""
        ...


@runtime_checkable
class MetadataStore(Protocol):
    """One document per rendered variant (MongoDB in production), keyed by result key.

    Writes are two-phase so that every object stays findable: ``begin`` records the
    document as pending before the object is uploaded, ``complete`` marks it stored after.
    ``find`` answers completed documents only; ``keys_for_source`` lists pending ones too.
    Backend failures raise :class:`~thumbor_py.errors.StorageError` (translated at the
    store's boundary).
    """

    async def find(self, key: str) -> StoredResult | None:
        """The variant's metadata, or None (also when pending or expired)."""
        ...

    async def begin(self, key: str, result: StoredResult, token: str) -> None:
        """Insert or replace the variant's document, pending under ``token``."""
        ...

    async def complete(self, key: str, token: str) -> bool:
        """Mark the document ``begin`` wrote under ``token`` as stored.

        False when that document is gone (purged meanwhile) or was replaced by another write.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete the variant's document (missing is fine)."""
        ...

    async def keys_for_source(self, source: str) -> list[tuple[str, str | None]]:
        """``(key, object_key)`` of every variant of ``source``, pending ones included."""
        ...


ALIASES: Mapping[str, Mapping[str, str]] = {
    "loader": {
        "file": "loaders.file:FileLoader",
        "http": "loaders.http:HttpLoader",
        "https": "loaders.http:HttpLoader",
        "s3": "loaders.s3:S3Loader",
    },
    "result_storage": {
        "file": "result_storages.file:FileResultStorage",
        "s3": "result_storages.s3:S3ResultStorage",
    },
    "detector": {
        "face": "thumbor_py.detectors.face:FaceDetector",
        "feature": "thumbor_py.detectors.feature:FeatureDetector",
    },
}

P = TypeVar("P")


def import_object(path: str, key: str) -> object:
    """Import the attribute a ``module:attribute`` path names; errors name ``key``."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)  # type: ignore[no-any-return]
    except AttributeError as exc:
        raise ConfigError(f"{key}: module {module_name!r} has no attribute {attribute!r}") from exc


def is_object_path(path: str) -> bool:
    """Whether ``path`` has the ``module:attribute`` shape."""
    module_name, colon, attribute = path.partition(":")
    return bool(colon and module_name and attribute)


def resolve_class(spec: str, kind: str, key: str) -> type[Any]:
    """Import the class named by an alias or ``module:Class``; ``key`` is the YAML key path."""
    target = ALIASES.get(kind, {}).get(spec, spec)
    if not is_object_path(target):
        known = ", ".join(sorted(ALIASES.get(kind, {}))) or "none"
        raise ConfigError(
            f"{key}: {spec!r} is neither a known {kind} alias ({known}) nor a module:Class path"
        )
    cls = import_object(target, key)
    if not isinstance(cls, type):
        raise ConfigError(f"{key}: {target!r} is not a class")
    return cls


def create_plugin(
    config: PluginConfig, protocol: type[P], kind: str, key: str, context: PluginContext
) -> P:
    """Build the plugin ``config`` names and check it satisfies ``protocol``."""
    if not config.use:
        raise ConfigError(f"{key}.use: required")
    return build_plugin(
        config.use, config.settings, protocol, kind, context, key=f"{key}.use", settings_key=key
    )


def build_plugin(
    spec: str,
    settings: Mapping[str, object],
    protocol: type[P],
    kind: str,
    context: PluginContext,
    *,
    key: str,
    settings_key: str,
) -> P:
    """Resolve ``spec``, build its ``Settings`` from ``settings`` and construct it.

    Errors name ``key`` (where the spec is written) or ``settings_key.settings``.
    """
    cls = resolve_class(spec, kind, key)
    settings_cls = getattr(cls, "Settings", None)
    if not isinstance(settings_cls, type) or not dataclasses.is_dataclass(settings_cls):
        raise ConfigError(f"{key}: {spec!r} has no Settings dataclass")
    built = build(settings_cls, settings, f"{settings_key}.settings")
    try:
        plugin = cls(built, context)
    except ConfigError:
        raise
    except (TypeError, ValueError, OSError) as exc:
        raise ConfigError(f"{settings_key}: cannot create {spec!r}: {exc}") from exc
    if not isinstance(plugin, protocol):  # type: ignore[misc]
        raise ConfigError(f"{key}: {spec!r} does not implement {protocol.__name__}")
    check_coroutines(plugin, protocol, key=key, spec=spec)
    return plugin


def check_coroutines(plugin: object, protocol: type[Any], *, key: str, spec: str) -> None:
    """Refuse a plugin whose method is synchronous where ``protocol`` declares ``async def``
    (``isinstance`` on a Protocol checks names only: a sync ``load`` would fail every request)."""
    for name, member in vars(protocol).items():
        if not inspect.iscoroutinefunction(member):
            continue
        if not inspect.iscoroutinefunction(getattr(plugin, name, None)):
            raise ConfigError(
                f"{key}: {spec!r} must define {name}() with 'async def' ({protocol.__name__})"
            )


_OFFERS: dict[tuple[type, str], bool] = {}


def offers(kind: type, method: str) -> bool:
    """Whether plugins of class ``kind`` offer ``method`` (an optional protocol such as
    ``read_blocking`` or ``identity``), looked up once per class: ``isinstance`` against a
    runtime-checkable protocol costs several µs, and the hot path asks once per request."""
    found = _OFFERS.get((kind, method))
    if found is None:
        found = _OFFERS[kind, method] = callable(getattr(kind, method, None))
    return found
