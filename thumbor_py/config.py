"""Configuration: one nested YAML file into frozen dataclasses, plus ``THUMBOR_PY_*`` overrides.

Every key is optional. Unknown keys and wrong types raise :class:`ConfigError` naming the key
path (``imaging.quality``). Scalars can be overridden from the environment as
``THUMBOR_PY_<SECTION>_<KEY>`` (for example ``THUMBOR_PY_SECURITY_KEY``), which is how secrets
stay out of the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import yaml

from thumbor_py.config_checks import UniqueKeyLoader, resolve_roots, validate_ranges
from thumbor_py.config_schema import ENV_PREFIX, apply_env, build
from thumbor_py.errors import ConfigError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """``server``: where to listen and how many processes and threads render."""

    host: str = "127.0.0.1"
    port: int = 8888
    workers: int = 0
    render_threads: int = 1
    render_queue: int = 64
    reuse_port: bool = True
    request_timeout: float = 30.0
    access_log: bool = True
    log_format: Literal["plain", "json"] = "plain"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Worker model: connection balancing, slow clients, supervision (see thumbor_py/server.py).
    balance_connections: bool = True
    pin_workers: bool = True
    # glibc: free memory each allocator arena keeps for the next render (thumbor_py/allocator.py).
    malloc_retain_bytes: int = 32 * 1024 * 1024
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    restart_delay: float = 0.5
    restart_delay_max: float = 30.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecurityConfig:
    """``security``: URL signing."""

    key: str | None = None
    previous_keys: tuple[str, ...] = ()
    allow_unsafe: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PluginConfig:
    """A plugin: ``use`` is an alias (``file``) or ``module:Class``; ``settings`` is its own."""

    # In YAML, a bare string names the plugin with its default settings.
    SHORT_FORM: ClassVar[bool] = True

    use: str | None = None
    settings: Mapping[str, object] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteConfig:
    """``routes[]``: sources starting with ``prefix`` go to ``loader``."""

    prefix: str
    loader: PluginConfig


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImagingConfig:
    """``imaging``: quality, limits and the image options that apply to every request."""

    quality: int = 80
    max_width: int = 0
    max_height: int = 0
    max_pixels: int = 75_000_000
    max_output_pixels: int = 40_000_000
    max_source_bytes: int = 50 * 1024 * 1024
    respect_orientation: bool = True
    preserve_exif: bool = False
    progressive_jpeg: bool = True
    auto_webp: bool = False
    auto_avif: bool = False
    auto_jpg: bool = False
    auto_png_to_jpg: bool = False
    auto_convert_animated: bool = False
    filters: tuple[str, ...] | None = None
    filter_plugins: tuple[str, ...] = ()
    strict_filters: bool = False
    max_frames: int = 300
    avif_speed: int = 6
    detectors: tuple[PluginConfig, ...] = (PluginConfig(use="face"), PluginConfig(use="feature"))
    detection_pixels: int = 180_000
    detection_cache_size: int = 1024
    detection_error_max_age: int = 60
    master_cache_bytes: int = 256 * 1024 * 1024
    master_size: int = 1920
    master_ttl: float = 300.0
    # Masters shared by the workers of one server (thumbor_py/shared_masters.py): bytes of
    # the shared tmpfs folder; 0 = each worker decodes for itself.
    shared_master_bytes: int = 512 * 1024 * 1024
    revalidate_after: float | None = 60.0
    revalidate_grace: float = 300.0

    # Cost limits of one request (see docs/limits.md).
    max_filters: int = 20
    max_kernel_size: int = 9
    max_avif_pixels: int = 4_000_000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CoherenceConfig:
    """``coherence``: the purge log every replica shares, so purges and changed originals
    reach every worker's caches (see thumbor_py/coherence.py)."""

    purge_log: Literal["auto", "file", "mongodb", "local"] = "auto"
    path: str | None = None
    mongodb_uri: str | None = None
    mongodb_database: str = "thumbor_py"
    mongodb_collection: str = "purges"
    check_interval: float = 0.5


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """``http``: response headers."""

    max_age: int = 86400
    error_max_age: int = 60
    etags: bool = True


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ResultStorageConfig(PluginConfig):
    """``result_storage``: where rendered variants are kept (``use: null`` = nowhere)."""

    store_unsafe: bool = False
    expires_after: int = 0
    timeout: float = 2.0
    pause_after_failure: float = 10.0
    redirect_status: Literal[301, 302, 307, 308] = 302
    required_for_readiness: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """``metrics``: the Prometheus endpoint ``/metrics``."""

    enabled: bool = True
    token: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    """``admin``: the purge endpoint, off unless a bearer token is set."""

    token: str | None = None


# --- repository (issue 17): originals uploaded through the server (docs/repository.md) ------
ApiScope = Literal["upload", "register", "delete", "read"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyConfig:
    """``repository.keys[]``: one API key, stored as the hex SHA-256 of the key, never the key."""

    name: str
    sha256: str
    scopes: tuple[ApiScope, ...] = ("upload", "register", "read")
    rate: float = 5.0  # requests per second, refilled continuously
    burst: int = 20  # requests allowed at once


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RecordsConfig:
    """``repository.metadata``: the MongoDB collection of image records (one per original)."""

    uri: str | None = None  # null = records as JSON in the originals' bucket (S3 only)
    database: str = "thumbor_py"
    collection: str = "images"
    timeout_ms: int = 2000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryConfig:
    """``repository`` (and ``tenants.sites[].repository``): Thumbor's upload API."""

    enabled: bool = False
    # Where originals go; ``use: null`` = the place the ``file`` or ``s3`` loader reads.
    storage: PluginConfig = dataclasses.field(default_factory=PluginConfig)
    prefix: str = "originals/"
    source_prefix: str = ""
    allow_put: bool = False
    allow_delete: bool = False
    max_bytes: int = 0  # 0 = imaging.max_source_bytes
    min_width: int = 1
    min_height: int = 1
    require_key: bool = True
    keys: tuple[ApiKeyConfig, ...] = ()
    # Direct uploads (POST /uploads, POST /images): S3 original storage and records needed.
    temporary_prefix: str = "incoming/"
    upload_expires: int = 300  # seconds a presigned upload may be used
    content_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp", "image/gif")
    srcset_widths: tuple[int, ...] = (320, 640, 1280)
    metadata: RecordsConfig = dataclasses.field(default_factory=RecordsConfig)
    upload_page: bool = False  # GET /upload: the operators' upload page


# --- end of repository ------------------------------------------------------------------


# --- tenants (issue 16): several media hostnames, each with its own settings --------------
Dialect = Literal["thumbor", "cloudimage"]
CloudimageSecurity = Literal["none", "signature", "seal", "signature_or_seal"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TenantConfig:
    """``tenants.sites[]``: one brand's hostnames and settings (see docs/cloudimage.md)."""

    name: str
    hosts: tuple[str, ...] = ()
    dialects: tuple[Dialect, ...] = ("thumbor", "cloudimage")
    cloudimage_without_v7: bool = False
    key: str | None = None
    previous_keys: tuple[str, ...] = ()
    allow_unsafe: bool | None = None
    salt: str | None = None
    signature_length: int = 18
    security: CloudimageSecurity = "none"
    unsigned_origins: tuple[str, ...] = ()
    origin_prefix: str | None = None
    aliases: Mapping[str, object] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    allowed_origins: tuple[str, ...] = ()
    default_route: str | None = None
    namespace: str | None = None
    auto_webp: bool | None = None
    auto_avif: bool | None = None
    presets: Mapping[str, object] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    only_presets: bool = False
    allowed_widths: tuple[int, ...] = ()
    max_dpr: float = 4.0
    repository: RepositoryConfig | None = None  # issue 17; null = no upload API for this host


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TenantsConfig:
    """``tenants``: answer several hostnames; an empty ``sites`` keeps one-site behaviour."""

    default: str | None = None
    presets: Mapping[str, object] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    sites: tuple[TenantConfig, ...] = ()


# --- end of tenants ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration."""

    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    security: SecurityConfig = dataclasses.field(default_factory=SecurityConfig)
    loader: PluginConfig = dataclasses.field(
        default_factory=lambda: PluginConfig(
            use="file", settings=types.MappingProxyType({"root": "./samples"})
        )
    )
    routes: tuple[RouteConfig, ...] = ()
    imaging: ImagingConfig = dataclasses.field(default_factory=ImagingConfig)
    coherence: CoherenceConfig = dataclasses.field(default_factory=CoherenceConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    result_storage: ResultStorageConfig = dataclasses.field(default_factory=ResultStorageConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    admin: AdminConfig = dataclasses.field(default_factory=AdminConfig)
    tenants: TenantsConfig = dataclasses.field(default_factory=TenantsConfig)
    repository: RepositoryConfig = dataclasses.field(default_factory=RepositoryConfig)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object] | None, *, env: Mapping[str, str] | None = None
    ) -> Config:
        """Build and validate a config from parsed YAML plus environment overrides."""
        environment = os.environ if env is None else env
        merged = apply_env(cls, dict(data or {}), environment)
        config = build(cls, merged, "")
        config.validate()
        return config

    @property
    def signing_keys(self) -> tuple[str, ...]:
        """The keys that may sign a URL, current first."""
        return ((self.security.key,) if self.security.key else ()) + self.security.previous_keys

    def validate(self) -> None:
        """Cross-field checks that a single field's type cannot express."""
        # With tenants, each tenant is checked for a key of its own (thumbor_py.tenants).
        if not self.security.allow_unsafe and not self.security.key and not self.tenants.sites:
            raise ConfigError(
                "security.key: a key is required when security.allow_unsafe is false "
                f"(set it in the file or in {ENV_PREFIX}SECURITY_KEY)"
            )
        _check_positive(self.imaging, ("quality", "max_pixels", "max_source_bytes"), "imaging")
        _check_positive(
            self.server,
            (
                "render_threads",
                "render_queue",
                "header_timeout",
                "keepalive_timeout",
                "restart_delay",
                "restart_delay_max",
            ),
            "server",
        )
        _check_imaging(self.imaging)
        validate_ranges(self)


# The configuration `thumbor-py serve` uses without --config: no external services.
EMBEDDED_DEFAULT: Mapping[str, object] = types.MappingProxyType(
    {
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": "./samples"}},
    }
)


def load_config(path: str | Path | None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load a YAML file (or the embedded quick-start default when ``path`` is None).

    Relative plugin roots written in the file (``loader.settings.root``, the file result
    storage's root) are resolved against the file's folder, not the current directory.
    """
    if path is None:
        return Config.from_mapping(EMBEDDED_DEFAULT, env=env)
    absolute = Path(path).absolute()
    try:
        text = absolute.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except OSError as exc:
        raise ConfigError(f"{absolute}: cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return Config.from_mapping(resolve_roots(data or {}, absolute.parent), env=env)


# The smallest copy detectors can find anything in.
MIN_DETECTION_PIXELS = 32 * 32


def _check_imaging(imaging: ImagingConfig) -> None:
    """Range checks of ``imaging`` that a field's type cannot express."""
    checks = (
        (1 <= imaging.quality <= 100, "quality: must be between 1 and 100"),
        (0 <= imaging.avif_speed <= 10, "avif_speed: must be between 0 (slowest) and 10"),
        (imaging.max_frames >= 0, "max_frames: must be 0 (no cap) or more"),
        (
            imaging.detection_pixels >= MIN_DETECTION_PIXELS,
            f"detection_pixels: must be at least {MIN_DETECTION_PIXELS}",
        ),
        (imaging.detection_cache_size >= 0, "detection_cache_size: must be 0 (off) or more"),
        (imaging.detection_error_max_age >= 0, "detection_error_max_age: must be 0 or more"),
    )
    for ok, problem in checks:
        if not ok:
            raise ConfigError(f"imaging.{problem}")


def _check_positive(section: object, names: tuple[str, ...], prefix: str) -> None:
    for name in names:
        if getattr(section, name) <= 0:
            raise ConfigError(f"{prefix}.{name}: must be greater than 0")
