"""Configuration: one nested YAML file into frozen dataclasses, plus ``THUMBOR_PY_*`` overrides.

Every key is optional. Unknown keys and wrong types raise :class:`ConfigError` naming the key
path (``imaging.quality``). Scalars can be overridden from the environment as
``THUMBOR_PY_<SECTION>_<KEY>`` (for example ``THUMBOR_PY_SECURITY_KEY``), which is how secrets
stay out of the file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from thumbor_py.errors import ConfigError

ENV_PREFIX = "THUMBOR_PY_"


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
    detectors: tuple[str, ...] = ("face", "feature")
    detection_pixels: int = 180_000
    detection_cache_size: int = 1024
    detection_error_max_age: int = 60
    master_cache_bytes: int = 256 * 1024 * 1024
    master_size: int = 1920
    master_ttl: float = 300.0
    # Cost limits of one request (see docs/limits.md).
    max_filters: int = 20
    max_kernel_size: int = 9
    max_avif_pixels: int = 4_000_000


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


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """``metrics``: the Prometheus endpoint ``/metrics``."""

    enabled: bool = True
    token: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    """``admin``: the purge endpoint, off unless a bearer token is set."""

    token: str | None = None


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
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    result_storage: ResultStorageConfig = dataclasses.field(default_factory=ResultStorageConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    admin: AdminConfig = dataclasses.field(default_factory=AdminConfig)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object] | None, *, env: Mapping[str, str] | None = None
    ) -> Config:
        """Build and validate a config from parsed YAML plus environment overrides."""
        merged = _apply_env(dict(data or {}), os.environ if env is None else env)
        config = build(cls, merged, "")
        config.validate()
        return config

    @property
    def signing_keys(self) -> tuple[str, ...]:
        """The keys that may sign a URL, current first."""
        return ((self.security.key,) if self.security.key else ()) + self.security.previous_keys

    def validate(self) -> None:
        """Cross-field checks that a single field's type cannot express."""
        if not self.security.allow_unsafe and not self.security.key:
            raise ConfigError(
                "security.key: a key is required when security.allow_unsafe is false "
                f"(set it in the file or in {ENV_PREFIX}SECURITY_KEY)"
            )
        _check_positive(self.imaging, ("quality", "max_pixels", "max_source_bytes"), "imaging")
        _check_positive(self.server, ("render_threads", "render_queue"), "server")
        if not 1 <= self.imaging.quality <= 100:
            raise ConfigError("imaging.quality: must be between 1 and 100")


# The configuration `thumbor-py serve` uses without --config: no external services.
EMBEDDED_DEFAULT: Mapping[str, object] = types.MappingProxyType(
    {
        "security": {"allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": "./samples"}},
    }
)


def load_config(path: str | Path | None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load a YAML file (or the embedded quick-start default when ``path`` is None)."""
    if path is None:
        return Config.from_mapping(EMBEDDED_DEFAULT, env=env)
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return Config.from_mapping(data, env=env)


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
        return build(tp, value, path)  # type: ignore[arg-type]
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


def _apply_env(data: dict[str, object], env: Mapping[str, str]) -> dict[str, object]:
    """Overlay ``THUMBOR_PY_<SECTION>_<KEY>`` variables onto scalar fields of each section."""
    hints = typing.get_type_hints(Config)
    for section, section_type in hints.items():
        if not isinstance(section_type, type) or not dataclasses.is_dataclass(section_type):
            continue
        if section_type is PluginConfig:
            continue
        for field in dataclasses.fields(section_type):
            name = f"{ENV_PREFIX}{section}_{field.name}".upper()
            if name not in env:
                continue
            raw = env[name]
            section_data = data.get(section) or {}
            if not isinstance(section_data, dict):
                raise ConfigError(f"{section}: expected a mapping, got {_kind(section_data)}")
            field_type = typing.get_type_hints(section_type)[field.name]
            section_data = dict(section_data)
            section_data[field.name] = raw if _is_str_field(field_type) else _env_value(raw, name)
            data[section] = section_data
    return data


def _is_str_field(tp: Any) -> bool:
    return tp is str or (typing.get_origin(tp) is types.UnionType and str in typing.get_args(tp))


def _env_value(raw: str, name: str) -> object:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not a valid value: {raw!r}") from exc
