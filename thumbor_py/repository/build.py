"""The repositories the config asks for, built once by the assembly (one per tenant that
enables ``repository``, or the top-level ``repository`` without tenants)."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from thumbor_py.config import Config, PluginConfig, RepositoryConfig
from thumbor_py.errors import ConfigError
from thumbor_py.repository.auth import KeyRing, build_keys
from thumbor_py.repository.bucket_records import BucketRecords
from thumbor_py.repository.checks import UploadLimits
from thumbor_py.repository.direct import DirectUploads
from thumbor_py.repository.focal import FocalPoints
from thumbor_py.repository.originals import (
    FileOriginalStorage,
    OriginalStorage,
    S3OriginalStorage,
    s3_settings,
)
from thumbor_py.repository.records import ImageRecords, RecordStore
from thumbor_py.repository.service import Purge, Repository, RepositorySettings
from thumbor_py.tenants import Tenant, TenantDirectory

FILE_STORAGES = frozenset({"file", "loaders.file:FileLoader"})
S3_STORAGES = frozenset({"s3", "loaders.s3:S3Loader"})


@dataclass(frozen=True, slots=True)
class Repositories:
    """Repositories by tenant name (or the one of a server without tenants)."""

    by_tenant: Mapping[str, Repository]
    default: Repository | None
    directory: TenantDirectory | None
    # Storages and the record store: may implement ``Lifecycle`` (started with the app).
    storages: tuple[object, ...]
    direct: Mapping[str, DirectUploads]
    # Recorded focal points for smart crops (None without a record store).
    focal: FocalPoints | None = None

    def for_host(self, host: str | None) -> Repository | None:
        """The repository of the tenant ``host`` picks; None when it has none."""
        if self.directory is None:
            return self.default
        tenant = self.directory.resolve(host)
        return None if tenant is None else self.by_tenant.get(tenant.name)

    def direct_for(self, repository: Repository) -> DirectUploads:
        """The direct uploads of ``repository``."""
        return self.direct[repository.settings.name]


def build_repositories(
    config: Config,
    directory: TenantDirectory | None,
    *,
    executor: Executor | None,
    purge: Callable[[str], Purge],
    records: ImageRecords | None = None,
) -> Repositories | None:
    """The enabled repositories, or None when no tenant (and not the server) enables one.
    ``purge(route)`` gives the purge of sources as the loader sees them, after ``route``."""
    sections = _sections(config, directory)
    if not sections:
        return None
    mongo: ImageRecords | None = records
    if mongo is None and config.repository.metadata.uri:
        mongo = RecordStore(settings=config.repository.metadata)
    tenants = {} if directory is None else _tenants(directory)
    storages = _Storages(config, executor)
    built: dict[str, Repository] = {}
    direct: dict[str, DirectUploads] = {}
    for name, key, section, route in sections:
        storage = storages.get(section, key)
        signing = _signing(config, tenants.get(name))
        repository = _repository(
            config, name, key, section, storage, executor, purge(route), signing
        )
        repository.records = record_store = mongo or storages.records(storage)
        built[name] = repository
        direct[name] = DirectUploads(
            repository,
            record_store,
            temporary_prefix=section.temporary_prefix,
            expires=section.upload_expires,
            content_types=section.content_types,
        )
    return Repositories(
        types.MappingProxyType(built),
        built.get("default") if directory is None else None,
        directory,
        (*storages.built, *(() if mongo is None else (mongo,))),
        types.MappingProxyType(direct),
        _focal_points(direct),
    )


def _focal_points(direct: Mapping[str, DirectUploads]) -> FocalPoints | None:
    """Focal points from the records of every repository that has them."""
    sites = {
        name: (uploads.repository.settings.prefix, uploads.record_store)
        for name, uploads in direct.items()
        if uploads.record_store is not None
    }
    return FocalPoints(sites) if sites else None


class _Storages:
    """One original storage per distinct ``storage`` section (so one client), never two
    repositories at one storage and prefix; and the bucket records of each S3 storage."""

    def __init__(self, config: Config, executor: Executor | None) -> None:
        self._config = config
        self._executor = executor
        self._by_spec: dict[str, OriginalStorage] = {}
        self._places: set[tuple[str, str]] = set()
        self._records: dict[int, ImageRecords] = {}

    @property
    def built(self) -> tuple[OriginalStorage, ...]:
        """Every storage built (started and closed with the app)."""
        return tuple(self._by_spec.values())

    def get(self, section: RepositoryConfig, key: str) -> OriginalStorage:
        """The storage of ``section`` (at YAML ``key``)."""
        spec = storage_spec(self._config, section.storage, key)
        name = repr(spec)
        if (name, section.prefix) in self._places:
            raise ConfigError(f"{key}.prefix: another repository stores under the same prefix")
        self._places.add((name, section.prefix))
        if name not in self._by_spec:
            self._by_spec[name] = _storage(spec, f"{key}.storage", self._executor)
        return self._by_spec[name]

    def records(self, storage: OriginalStorage) -> ImageRecords | None:
        """Without MongoDB: records as JSON objects in an S3 storage's bucket; else none."""
        if not isinstance(storage, S3OriginalStorage):
            return None
        return self._records.setdefault(id(storage), BucketRecords(storage))


def _sections(
    config: Config, directory: TenantDirectory | None
) -> list[tuple[str, str, RepositoryConfig, str]]:
    """(name, YAML key, section, loader route) of every enabled repository."""
    sections: list[tuple[str, str, RepositoryConfig, str]] = []
    if directory is None:
        if config.repository.enabled:
            sections.append(("default", "repository", config.repository, ""))
    else:
        if config.repository.enabled:
            raise ConfigError(
                "repository.enabled: with tenants, enable it per tenant "
                "(tenants.sites[].repository)"
            )
        for index, site in enumerate(config.tenants.sites):
            if site.repository is not None and site.repository.enabled:
                route = site.default_route or ""
                sections.append(
                    (site.name, f"tenants.sites[{index}].repository", site.repository, route)
                )
    return sections


def _tenants(directory: TenantDirectory) -> dict[str, Tenant]:
    tenants = {tenant.name: tenant for tenant in directory.by_host.values()}
    if directory.default is not None:
        tenants[directory.default.name] = directory.default
    return tenants


def _signing(config: Config, tenant: Tenant | None) -> tuple[str | None, Mapping[str, str]]:
    """The key that signs the URLs answered with a record, and the presets they name."""
    if tenant is None:  # presets are a tenant feature: none in one-site URLs
        keys = config.signing_keys
        return (keys[0] if keys else None), {}
    return (tenant.signing_keys[0] if tenant.signing_keys else None), tenant.presets


def _repository(
    config: Config,
    name: str,
    key: str,
    section: RepositoryConfig,
    storage: OriginalStorage,
    executor: Executor | None,
    purge: Purge,
    signing: tuple[str | None, Mapping[str, str]],
) -> Repository:
    keys = build_keys(section.keys, f"{key}.keys")
    if section.require_key and not keys:
        raise ConfigError(f"{key}.keys: give at least one key, or set require_key: false")
    _check_section(section, key)
    limits = UploadLimits(
        max_bytes=section.max_bytes or config.imaging.max_source_bytes,
        min_width=section.min_width,
        min_height=section.min_height,
    )
    settings = RepositorySettings(
        name=name,
        prefix=section.prefix,
        source_prefix=section.source_prefix,
        allow_put=section.allow_put,
        allow_delete=section.allow_delete,
        limits=limits,
        signing_key=signing[0],
        presets=signing[1],
        srcset_widths=tuple(sorted(set(section.srcset_widths))),
        upload_page=section.upload_page,
    )
    return Repository(
        settings,
        storage=storage,
        keys=KeyRing(keys, required=section.require_key),
        imaging=config.imaging,
        executor=executor,
        purge=purge,
    )


def _check_section(section: RepositoryConfig, key: str) -> None:
    """The ranges and forms a field's type cannot express."""
    if section.max_bytes < 0 or section.min_width < 1 or section.min_height < 1:
        raise ConfigError(f"{key}: max_bytes must be >= 0, min_width and min_height >= 1")
    for field in ("prefix", "temporary_prefix"):
        value = getattr(section, field)
        if value and not value.endswith("/"):
            raise ConfigError(f"{key}.{field}: must end with '/'")
    if not 1 <= section.upload_expires <= 3600:
        raise ConfigError(f"{key}.upload_expires: must be 1 to 3600 seconds")


def storage_spec(config: Config, storage: PluginConfig, key: str) -> PluginConfig:
    """``storage``, or (``use: null``) the place the ``file`` or ``s3`` loader reads."""
    if storage.use:
        return storage
    loader = config.loader
    if loader.use in FILE_STORAGES:
        return PluginConfig(use="file", settings=loader.settings)
    if loader.use in S3_STORAGES:
        return PluginConfig(use="s3", settings=loader.settings)
    raise ConfigError(f"{key}.use: name the original storage (file or s3) for this loader")


def _storage(spec: PluginConfig, key: str, executor: Executor | None) -> OriginalStorage:
    settings = dict(spec.settings)
    if spec.use in FILE_STORAGES:
        root = settings.get("root", "./samples")
        if not isinstance(root, str):
            raise ConfigError(f"{key}.settings.root: expected a folder")
        return FileOriginalStorage(Path(root), executor)
    if spec.use in S3_STORAGES:
        try:
            return S3OriginalStorage(s3_settings(settings))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}.settings: {exc}") from exc
    raise ConfigError(f"{key}.use: expected file or s3, got {spec.use!r}")
