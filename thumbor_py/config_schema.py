"""The YAML-to-dataclass builder behind :mod:`thumbor_py.config`: keys and types checked
against the frozen dataclasses, errors naming the key path, and ``THUMBOR_PY_*`` overrides.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import yaml

from thumbor_py.config_checks import did_you_mean
from thumbor_py.errors import ConfigError

ENV_PREFIX = "THUMBOR_PY_"
# THUMBOR_PY_* variables read outside the configuration (not config fields): never warned about.
OTHER_ENV_NAMES = frozenset({"THUMBOR_PY_MONGODB_URI", "THUMBOR_PY_TEST_MONGODB_URI"})

log = logging.getLogger("thumbor_py.config")

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
    mapping: Mapping[str, object], path: tuple[str, ...], value: object, where: str
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
    if isinstance(value, str) and getattr(tp, "SHORT_FORM", False):
        return tp(use=value)  # a plugin named alone: its default settings
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


def env_fields(root: type) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Every ``THUMBOR_PY_<SECTION>_<KEY>`` name of ``root``'s sections, and
    ``THUMBOR_PY_<SECTION>_<SUBSECTION>_<KEY>`` for a section's own sections (such as
    ``repository.metadata``): its key path and field type. Plugin sections are left out:
    their settings belong to the plugin."""
    fields: dict[str, tuple[tuple[str, ...], Any]] = {}

    def walk(section_type: type, path: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(section_type)
        for field in dataclasses.fields(section_type):
            field_path, field_type = (*path, field.name), hints[field.name]
            if _is_section(field_type):
                walk(field_type, field_path)
            else:
                fields[f"{ENV_PREFIX}{'_'.join(field_path)}".upper()] = (field_path, field_type)

    for section, section_type in typing.get_type_hints(root).items():
        if _is_section(section_type):
            walk(section_type, (section,))
    return fields


def _is_section(tp: Any) -> bool:
    """A dataclass of settings, other than a plugin's ``use`` + ``settings``."""
    if not isinstance(tp, type) or not dataclasses.is_dataclass(tp):
        return False
    return {field.name for field in dataclasses.fields(tp)} != {"use", "settings"}


def apply_env(root: type, data: dict[str, object], env: Mapping[str, str]) -> dict[str, object]:
    """Overlay ``THUMBOR_PY_<SECTION>_<KEY>`` variables (see :func:`env_fields`) onto the
    scalar fields of ``root``'s sections, then the secrets with names of their own
    (``NAMED_ENV``)."""
    fields = env_fields(root)
    warn_unknown_env(env, fields)
    for name, ((section, *path), field_type) in fields.items():
        if name not in env:
            continue
        raw = env[name]
        if raw == "" and _is_optional_str(field_type):
            continue  # ``KEY=`` (an empty compose default) means "not set", never an empty key
        section_data = data.get(section) or {}
        if not isinstance(section_data, Mapping):
            raise ConfigError(f"{section}: expected a mapping, got {_kind(section_data)}")
        value = raw if _is_str_field(field_type) else _env_value(raw, name)
        data[section] = _set_in(section_data, tuple(path), value, section)
    return _apply_named_env(data, env)


def warn_unknown_env(env: Mapping[str, str], fields: typing.Iterable[str]) -> None:
    """Log a WARNING for each ``THUMBOR_PY_*`` variable that configures nothing (a typo)."""
    known = set(fields)
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
