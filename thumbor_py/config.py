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
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from thumbor_py.config_checks import UniqueKeyLoader, did_you_mean, resolve_roots, validate_ranges
from thumbor_py.errors import ConfigError

ENV_PREFIX = "THUMBOR_PY_"
# THUMBOR_PY_* variables read outside this module (not config fields): never warned about.
OTHER_ENV_NAMES = frozenset({"THUMBOR_PY_MONGODB_URI", "THUMBOR_PY_TEST_MONGODB_URI"})

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
    # Worker model: connection balancing, slow clients, supervision (see thumbor_py/server.py).
    balance_connections: bool = True
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


# Secrets with names of their own (not THUMBOR_PY_<SECTION>_<KEY>): the variable, the
# section, the path inside its ``settings``, and the plugins (by ``use``) that take it. For
# any other plugin the variable is ignored, since its settings would refuse the key.
_S3_STORAGES = ("s3", "result_storages.s3:S3ResultStorage")
_S3_LOADERS = ("s3", "loaders.s3:S3Loader")
NAMED_ENV: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (f"{ENV_PREFIX}MONGODB_URI", "result_storage", ("metadata", "uri"), _S3_STORAGES),
    (
        f"{ENV_PREFIX}RESULT_STORAGE_ACCESS_KEY_ID",
        "result_storage",
        ("access_key_id",),
        _S3_STORAGES,
    ),
    (
        f"{ENV_PREFIX}RESULT_STORAGE_SECRET_ACCESS_KEY",
        "result_storage",
        ("secret_access_key",),
        _S3_STORAGES,
    ),
    (f"{ENV_PREFIX}LOADER_ACCESS_KEY_ID", "loader", ("access_key_id",), _S3_LOADERS),
    (f"{ENV_PREFIX}LOADER_SECRET_ACCESS_KEY", "loader", ("secret_access_key",), _S3_LOADERS),
)


def _apply_named_env(data: dict[str, object], env: Mapping[str, str]) -> dict[str, object]:
    """Put each set ``NAMED_ENV`` variable into its plugin's settings (it wins over the file)."""
    for name, section, path, plugins in NAMED_ENV:
        section_data = data.get(section)
        if name not in env or not isinstance(section_data, Mapping):
            continue
        if section_data.get("use") not in plugins:
            continue
        settings = section_data.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{section}.settings: expected a mapping, got {_kind(settings)}")
        where = f"{section}.settings"
        data[section] = {**section_data, "settings": _set_in(settings, path, env[name], where)}
    return data


def _set_in(
    mapping: Mapping[str, object], path: tuple[str, ...], value: str, where: str
) -> dict[str, object]:
    head, *rest = path
    updated = dict(mapping)
    if not rest:
        updated[head] = value
        return updated
    inner = mapping.get(head) or {}
    if not isinstance(inner, Mapping):
        raise ConfigError(f"{where}.{head}: expected a mapping, got {_kind(inner)}")
    updated[head] = _set_in(inner, tuple(rest), value, f"{where}.{head}")
    return updated


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """``metrics``: the Prometheus endpoint ``/metrics``."""

    enabled: bool = True
    token: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    """``admin``: the purge endpoint, off unless a bearer token is set."""

    token: str | None = None


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

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object] | None, *, env: Mapping[str, str] | None = None
    ) -> Config:
        """Build and validate a config from parsed YAML plus environment overrides."""
        environment = os.environ if env is None else env
        merged = _apply_named_env(_apply_env(dict(data or {}), environment), environment)
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


T = TypeVar("T")


def build(cls: type[T], data: object, path: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types; errors name ``path``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or '<top>'}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise ConfigError(f"{_join(path, str(key))}: unknown key")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _coerce(hints[name], data[name], _join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: required")
    return cls(**values)


def _coerce(tp: Any, value: object, path: str) -> object:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _nested(tp, value, path)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {_kind(value)}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(str, typing.get_args(tp)))
            raise ConfigError(f"{path}: expected one of {choices}, got {value!r}")
        return value
    if tp is Mapping[str, object] or origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_kind(value)}")
        return types.MappingProxyType(dict(value))
    return _coerce_scalar(tp, value, path)


def _nested(tp: Any, value: object, path: str) -> object:
    if tp is PluginConfig and isinstance(value, str):
        return PluginConfig(use=value)  # the short form: a plugin with default settings
    return build(tp, value, path)


def _coerce_scalar(tp: Any, value: object, path: str) -> object:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {_kind(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_kind(value)}")
        return value
    if tp is object:
        return value
    raise ConfigError(f"{path}: unsupported field type {tp!r}")  # a programming error


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _env_fields() -> dict[str, tuple[str, str, Any]]:
    """Every ``THUMBOR_PY_<SECTION>_<KEY>`` name: its section, field and field type."""
    fields: dict[str, tuple[str, str, Any]] = {}
    for section, section_type in typing.get_type_hints(Config).items():
        if not isinstance(section_type, type) or not dataclasses.is_dataclass(section_type):
            continue
        if section_type is PluginConfig:
            continue
        hints = typing.get_type_hints(section_type)
        for field in dataclasses.fields(section_type):
            name = f"{ENV_PREFIX}{section}_{field.name}".upper()
            fields[name] = (section, field.name, hints[field.name])
    return fields


def _apply_env(data: dict[str, object], env: Mapping[str, str]) -> dict[str, object]:
    """Overlay ``THUMBOR_PY_<SECTION>_<KEY>`` variables onto scalar fields of each section."""
    fields = _env_fields()
    warn_unknown_env(env, fields)
    for name, (section, field_name, field_type) in fields.items():
        if name not in env:
            continue
        raw = env[name]
        if raw == "" and _is_optional_str(field_type):
            continue  # ``KEY=`` (an empty compose default) means "not set", never an empty key
        section_data = data.get(section) or {}
        if not isinstance(section_data, dict):
            raise ConfigError(f"{section}: expected a mapping, got {_kind(section_data)}")
        section_data = dict(section_data)
        section_data[field_name] = raw if _is_str_field(field_type) else _env_value(raw, name)
        data[section] = section_data
    return data


def warn_unknown_env(env: Mapping[str, str], fields: typing.Iterable[str] | None = None) -> None:
    """Log a WARNING for each ``THUMBOR_PY_*`` variable that configures nothing (a typo)."""
    known = set(_env_fields() if fields is None else fields)
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known and name not in OTHER_ENV_NAMES:
            log.warning(
                "environment variable %s configures nothing: ignored%s",
                name,
                did_you_mean(name, known | OTHER_ENV_NAMES),
            )


def _is_optional_str(tp: Any) -> bool:
    return typing.get_origin(tp) is types.UnionType and set(typing.get_args(tp)) == {
        str,
        type(None),
    }


def _is_str_field(tp: Any) -> bool:
    return tp is str or (typing.get_origin(tp) is types.UnionType and str in typing.get_args(tp))


def _env_value(raw: str, name: str) -> object:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not a valid value: {raw!r}") from exc
