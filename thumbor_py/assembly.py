"""Assembly: every part of the server built from the config, once, at start-up.

This is the only module that turns configuration into objects: it resolves the plugins
(loader and routes, result storage, detectors, filter plugins), wraps the result storage in
its guard, builds the renderer, the master cache, the thread pools and the pipeline, and
hands each part the built objects it uses. Any part may be given already built (tests, or an
embedding application); the rest is built from the config. Every failure is a
:class:`~thumbor_py.errors.ConfigError` naming the YAML key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

from PIL import Image

from thumbor_py import metrics
from thumbor_py.coherence import Coherence, CoherenceSettings, MemoryPurgeLog, PurgeLog
from thumbor_py.config import Config, ImagingConfig, PluginConfig
from thumbor_py.config_checks import did_you_mean
from thumbor_py.errors import ConfigError
from thumbor_py.imaging import formats
from thumbor_py.imaging.detection import SmartDetection
from thumbor_py.imaging.filters import FilterShapeError, FilterSpec, build_registry, spec_of
from thumbor_py.imaging.master import MasterCache
from thumbor_py.imaging.transform import Renderer
from thumbor_py.pipeline import Pipeline, StoragePolicy
from thumbor_py.plugins import (
    Detector,
    Loader,
    PluginContext,
    ResultStorage,
    build_plugin,
    create_plugin,
    import_object,
    is_object_path,
)
from thumbor_py.purge_logs import FilePurgeLog, MongoPurgeLog
from thumbor_py.repository.build import Repositories, build_repositories
from thumbor_py.repository.purge_log import repository_purge_log
from thumbor_py.repository.records import ImageRecords
from thumbor_py.results import GuardedResultStorage
from thumbor_py.routing import RoutingLoader
from thumbor_py.shared_masters import FOLDER_ENV, SHARED_MIN_PIXELS, SharedMasters
from thumbor_py.tenants import TenantDirectory, build_directory

log = logging.getLogger("thumbor_py")
# Loaders and storages run blocking SDK and file calls here, off the event loop.
IO_THREADS = 16


class Given(TypedDict, total=False):
    """Parts built by the caller (tests, an embedding application), used as they are and
    started and closed with the app like the built ones."""

    loader: Loader
    result_storage: ResultStorage  # still goes behind the configured guard
    detectors: Sequence[Detector]
    registry: dict[str, FilterSpec]
    purge_log: PurgeLog
    repository_records: ImageRecords  # issue 17: image records (tests: an in-memory double)


@dataclass(frozen=True, slots=True)
class Parts:
    """The built server: what the app serves with, and what it starts and closes."""

    pipeline: Pipeline
    loader: Loader
    result_storage: GuardedResultStorage | None
    # Plugins that may implement ``Lifecycle``: started before serving, closed after.
    plugins: tuple[object, ...]
    executors: tuple[ThreadPoolExecutor, ...]
    # What purges go through (the pipeline asks the same object); built from ``coherence``.
    coherence: Coherence
    # The tenants by Host and their dialects; None without ``tenants.sites``.
    tenants: TenantDirectory | None = None
    # The upload API's repositories (issue 17); None when none is enabled.
    repositories: Repositories | None = None


def apply_process_settings() -> None:
    """Process-wide settings, applied at start-up (never at import): Pillow's own limits,
    and the Prometheus collectors (after ``server`` chose the multi-process folder)."""
    Image.MAX_IMAGE_PIXELS = formats.PILLOW_MAX_IMAGE_PIXELS
    metrics.create_all()


def build_parts(config: Config, **given: Unpack[Given]) -> Parts:
    """Every part ``config`` asks for; the ``given`` ones are used as they are."""
    config.validate()
    apply_process_settings()
    render_pool = ThreadPoolExecutor(
        max_workers=config.server.render_threads, thread_name_prefix="thumbor-py-render"
    )
    io_pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="thumbor-py-io")
    context = PluginContext(max_source_bytes=config.imaging.max_source_bytes, executor=io_pool)
    loader = given.get("loader")
    if loader is None:
        loader = build_loader(config, context)
    result_storage = given.get("result_storage")
    if result_storage is None:
        result_storage = build_result_storage(config, context)
    guarded = guard(config, result_storage) if result_storage is not None else None
    renderer = build_renderer(
        config.imaging, detectors=given.get("detectors"), registry=given.get("registry")
    )
    purge_log = given.get("purge_log")
    if purge_log is None:
        purge_log = build_purge_log(config, io_pool)
    coherence = Coherence(purge_log, loader, coherence_settings(config))
    pipeline = Pipeline(
        loader=loader,
        renderer=renderer,
        executor=render_pool,
        max_pending=config.server.render_threads + config.server.render_queue,
        storage=guarded,
        policy=StoragePolicy(
            store_unsafe=config.result_storage.store_unsafe,
            expires_after=config.result_storage.expires_after,
        ),
        deadline=config.server.request_timeout,
        masters=build_master_cache(config.imaging),
        coherence=coherence,
        shared=build_shared_masters(config),
        io_executor=io_pool,
    )
    plugins: tuple[object, ...] = (loader, purge_log) + ((guarded,) if guarded is not None else ())
    executors = (render_pool, io_pool)
    tenants = build_directory(config)
    # --- repository (issue 17): purges go through the same coherence seam as /admin/results
    repositories = build_repositories(
        config,
        tenants,
        executor=render_pool,
        purge=_purge_through(coherence, guarded),
        records=given.get("repository_records"),
    )
    if repositories is not None:
        plugins += repositories.storages
    return Parts(pipeline, loader, guarded, plugins, executors, coherence, tenants, repositories)


def _purge_through(
    coherence: Coherence, storage: GuardedResultStorage | None
) -> Callable[[str], Callable[[str], Awaitable[int]]]:
    """``purge(route)(source)``: purge ``route + source`` everywhere (the admin endpoint's
    path), deleting stored results when there is a result storage."""

    def for_route(route: str) -> Callable[[str], Awaitable[int]]:
        async def purge(source: str) -> int:
            return await coherence.purge(route + source, None if storage is None else storage.purge)

        return purge

    return for_route


def build_loader(config: Config, context: PluginContext) -> Loader:
    """The configured loader, wrapped in a router when ``routes`` are configured.

    Routes whose ``loader`` sections are identical share one instance (and so one client):
    ``http://`` and ``https://`` routes to the same ``http`` settings use one session.
    """
    default = create_plugin(config.loader, Loader, "loader", "loader", context)  # type: ignore[type-abstract]
    if not config.routes:
        return default
    built: list[tuple[PluginConfig, Loader]] = [(config.loader, default)]
    routes: list[tuple[str, Loader]] = []
    for index, route in enumerate(config.routes):
        loader = next((made for spec, made in built if spec == route.loader), None)
        if loader is None:
            loader = create_plugin(
                route.loader,
                Loader,  # type: ignore[type-abstract]
                "loader",
                f"routes[{index}].loader",
                context,
            )
            built.append((route.loader, loader))
        routes.append((route.prefix, loader))
    return RoutingLoader(routes, default)


def build_result_storage(config: Config, context: PluginContext) -> ResultStorage | None:
    """The configured result storage plugin, or None when ``result_storage.use`` is empty."""
    if not config.result_storage.use:
        return None
    return create_plugin(
        config.result_storage,
        ResultStorage,  # type: ignore[type-abstract]
        "result_storage",
        "result_storage",
        context,
    )


def guard(config: Config, storage: ResultStorage) -> GuardedResultStorage:
    """``storage`` behind its timeout and pause-after-failure guard."""
    settings = config.result_storage
    return GuardedResultStorage(
        storage, timeout=settings.timeout, pause=settings.pause_after_failure
    )


def build_detectors(
    specs: Iterable[PluginConfig | str],
    context: PluginContext,
    *,
    key: str = "imaging.detectors",
) -> tuple[Detector, ...]:
    """The detectors ``specs`` lists (``{use, settings}``, or an alias or ``module:Class``
    alone for default settings); any failure is a :class:`ConfigError` naming ``key[i]``."""
    detectors = []
    for index, spec in enumerate(specs):
        plugin = PluginConfig(use=spec) if isinstance(spec, str) else spec
        where = f"{key}[{index}]"
        if not plugin.use:
            raise ConfigError(f"{where}.use: required")
        detectors.append(
            build_plugin(
                plugin.use,
                plugin.settings,
                Detector,  # type: ignore[type-abstract]
                "detector",
                context,
                key=where,
                settings_key=where,
            )
        )
    return tuple(detectors)


def load_filter_plugins(
    paths: Iterable[str], *, key: str = "imaging.filter_plugins"
) -> tuple[FilterSpec, ...]:
    """Resolve ``module:function`` filter plugins; a bad one is a ConfigError naming ``key``."""
    specs = []
    for index, path in enumerate(paths):
        where = f"{key}[{index}]"
        if not is_object_path(path):
            raise ConfigError(f"{where}: expected 'module:function', got {path!r}")
        try:
            spec = spec_of(import_object(path, where))
        except FilterShapeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if spec is None:
            raise ConfigError(f"{where}: {path!r} is not marked with @image_filter")
        specs.append(spec)
    return tuple(specs)


def build_renderer(
    imaging: ImagingConfig,
    *,
    detectors: Sequence[Detector] | None = None,
    registry: dict[str, FilterSpec] | None = None,
) -> Renderer:
    """The renderer for ``imaging``: built-in filters plus ``imaging.filter_plugins``, and
    the ``imaging.detectors`` chain (unless ``detectors`` or ``registry`` are given)."""
    apply_process_settings()
    if registry is None:
        registry = build_registry(load_filter_plugins(imaging.filter_plugins))
    _check_filter_names(imaging, registry)
    if detectors is None:
        context = PluginContext(max_source_bytes=imaging.max_source_bytes)
        detectors = build_detectors(imaging.detectors, context)
    return Renderer(imaging, registry, detection=SmartDetection(imaging, detectors))


def _check_filter_names(imaging: ImagingConfig, registry: Mapping[str, FilterSpec]) -> None:
    """``imaging.filters`` names only filters that exist (built-in or plugin)."""
    for index, name in enumerate(imaging.filters or ()):
        if name not in registry:
            raise ConfigError(
                f"imaging.filters[{index}]: unknown filter {name!r}{did_you_mean(name, registry)}"
            )


def build_master_cache(imaging: ImagingConfig) -> MasterCache | None:
    """The master cache ``imaging.master_cache_bytes`` asks for, or None when it is 0."""
    if imaging.master_cache_bytes <= 0:
        return None
    return MasterCache(max_bytes=imaging.master_cache_bytes, ttl=imaging.master_ttl)


def build_shared_masters(config: Config) -> SharedMasters | None:
    """The masters shared by the workers (the folder the server hands them), or None with
    one worker, no master cache, or ``imaging.shared_master_bytes`` 0."""
    folder = os.environ.get(FOLDER_ENV)
    imaging = config.imaging
    if not folder or imaging.master_cache_bytes <= 0 or imaging.shared_master_bytes <= 0:
        return None
    return SharedMasters(
        Path(folder),
        namespace=repr((config.loader, config.routes)),
        max_bytes=imaging.shared_master_bytes,
        min_pixels=SHARED_MIN_PIXELS,
        ttl=imaging.master_ttl,
    )


def coherence_settings(config: Config) -> CoherenceSettings:
    """How fresh coherence checks are: ``coherence.check_interval``, ``imaging.revalidate_*``
    (their ranges are checked by ``Config.validate``)."""
    imaging = config.imaging
    return CoherenceSettings(
        check_interval=config.coherence.check_interval,
        revalidate_after=imaging.revalidate_after,
        revalidate_grace=imaging.revalidate_grace,
    )


_STORES_BY_STORAGE = {
    "file": "file",
    "result_storages.file:FileResultStorage": "file",
    "s3": "mongodb",
    "result_storages.s3:S3ResultStorage": "mongodb",
}


def build_purge_log(config: Config, executor: Executor | None = None) -> PurgeLog:
    """The purge log ``coherence.purge_log`` names. ``auto`` picks the store the result
    storage already uses: a ``.coherence`` folder in the file storage's root, or a
    collection beside the S3 storage's MongoDB metadata; with no result storage, a log local
    to the process."""
    settings, storage = config.coherence, config.result_storage
    kind: str = settings.purge_log
    if kind == "auto":
        kind = _STORES_BY_STORAGE.get(storage.use or "", "local")
        # issue 17: without a result storage's store, beside the repository's originals.
        shared = repository_purge_log(config, executor) if kind == "local" else None
        if shared is not None:
            return shared
        if kind == "local" and storage.use:
            log.warning(
                "coherence.purge_log: no shared store known for result_storage %r; purges "
                "reach this process only (set coherence.purge_log to file or mongodb)",
                storage.use,
            )
    if kind == "local":
        return MemoryPurgeLog()
    file_storage = _STORES_BY_STORAGE.get(storage.use or "") == "file"
    if kind == "file":
        path = settings.path
        if path is None:
            if not file_storage:
                raise ConfigError("coherence.path: required when the purge log is a folder")
            path = str(Path(str(storage.settings.get("root", "./result_storage"))) / ".coherence")
        return FilePurgeLog(Path(path).expanduser(), executor)
    s3_storage = _STORES_BY_STORAGE.get(storage.use or "") == "mongodb"
    metadata = storage.settings.get("metadata") if s3_storage else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    # THUMBOR_PY_MONGODB_URI reaches ``result_storage.settings.metadata.uri`` through the
    # config's overrides (config_schema.NAMED_ENV).
    uri = settings.mongodb_uri or metadata.get("uri")
    if not uri:
        raise ConfigError("coherence.mongodb_uri: required for a MongoDB purge log")
    database = settings.mongodb_database
    if not settings.mongodb_uri:
        database = str(metadata.get("database", database))
    timeout_ms = int(metadata.get("timeout_ms", 1000))  # as the metadata store's own
    return MongoPurgeLog(
        uri=str(uri), database=database, name=settings.mongodb_collection, timeout_ms=timeout_ms
    )
