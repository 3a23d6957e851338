"""Load-time checks of the configuration: duplicate YAML keys, value ranges, filter names,
relative plugin roots. Each error names the key path."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from thumbor_py.errors import ConfigError

if TYPE_CHECKING:
    from thumbor_py.config import Config

# Plugin aliases whose ``settings.root`` is a folder, resolved against the config file's folder.
_ROOTED_ALIASES = frozenset({"file"})
_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (YAML 1.2 forbids
    it; PyYAML silently keeps the last one, so a typo'd override would win unseen)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build the mapping, failing on the second occurrence of a key."""
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # "<<: *anchor" keys may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def resolve_roots(data: Mapping[str, object], base: Path) -> dict[str, object]:
    """``data`` with the relative ``settings.root`` of ``file`` plugins made absolute under
    ``base`` (``loader``, ``routes[].loader`` and ``result_storage``)."""
    resolved = dict(data)
    for section in ("loader", "result_storage"):
        resolved[section] = _resolve_plugin_root(resolved.get(section), base)
    routes = resolved.get("routes")
    if isinstance(routes, list):
        resolved["routes"] = [
            {**route, "loader": _resolve_plugin_root(route.get("loader"), base)}
            if isinstance(route, dict)
            else route
            for route in routes
        ]
    return {key: value for key, value in resolved.items() if value is not None or key in data}


def _resolve_plugin_root(section: object, base: Path) -> object:
    if not isinstance(section, dict) or section.get("use") not in _ROOTED_ALIASES:
        return section
    settings = section.get("settings")
    if not isinstance(settings, dict) or not isinstance(settings.get("root"), str):
        return section
    root = Path(settings["root"]).expanduser()
    if root.is_absolute():
        return section
    return {**section, "settings": {**settings, "root": str(base / root)}}


def validate_ranges(config: Config) -> None:
    """Ranges and names a field's type cannot express; each error names its key path."""
    server = config.server
    if not 0 < server.port <= 65535:
        raise ConfigError(f"server.port: must be between 1 and 65535, got {server.port}")
    if server.request_timeout <= 0:
        raise ConfigError(
            f"server.request_timeout: must be greater than 0 seconds, got {server.request_timeout}"
        )
    if server.workers < 0:
        raise ConfigError(f"server.workers: must be 0 (one per CPU) or more, got {server.workers}")
    if server.malloc_retain_bytes < 0:
        raise ConfigError(
            f"server.malloc_retain_bytes: must be 0 (allocator defaults) or more, "
            f"got {server.malloc_retain_bytes}"
        )
    if config.security.key == "":
        raise ConfigError("security.key: must not be empty (an empty key signs nothing)")
    for index, key in enumerate(config.security.previous_keys):
        if not key:
            raise ConfigError(f"security.previous_keys[{index}]: must not be empty")
    seconds = {
        "coherence.check_interval": config.coherence.check_interval,
        "imaging.revalidate_after": config.imaging.revalidate_after,
        "imaging.revalidate_grace": config.imaging.revalidate_grace,
    }
    for name, value in seconds.items():
        if value is not None and value < 0:
            raise ConfigError(f"{name}: must be 0 seconds or more, got {value}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
