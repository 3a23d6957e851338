"""The effective configuration (defaults + file + environment) as YAML, secrets masked."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import yaml

from thumbor_py.config import Config

MASK = "********"
# Names whose values are secrets wherever they appear (plugin settings included).
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:key|keys|token|secret|password|passwd|credentials?)(?:$|_)", re.IGNORECASE
)


def effective_yaml(config: Config) -> str:
    """``config`` as a YAML document with every secret replaced by ``MASK``."""
    plain = _plain(config, "")
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _plain(value: object, name: str) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name), field.name)
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): _plain(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, name) for item in value]
    if isinstance(value, str):
        return _mask(name, value)
    return value


def _mask(name: str, value: str) -> str:
    if value and _SECRET_NAME.search(name):
        return MASK
    return _mask_userinfo(value)


def _mask_userinfo(value: str) -> str:
    """A URL's password (``mongodb://user:secret@host/``) masked; anything else unchanged."""
    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password is None:
        return value
    netloc = f"{parts.username}:{MASK}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))
