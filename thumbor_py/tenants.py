"""Tenants by ``Host``: each media hostname gets its own dialects, keys, origins and presets.

Built once at start-up from ``tenants:`` in the config; resolving a request's host is a dict
lookup. With no ``tenants.sites`` there is no directory and the server behaves as one site.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from thumbor_py.config import (
    CloudimageSecurity,
    Config,
    Dialect,
    ImagingConfig,
    TenantConfig,
)
from thumbor_py.errors import ConfigError

_ALIAS = re.compile(r"_[A-Za-z0-9-]+_")


@dataclass(frozen=True, slots=True)
class OriginAllowlist:
    """Host globs (``*.example.com``) and full-URL regexes (``^https://…``); empty = any."""

    globs: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], key: str) -> OriginAllowlist:
        """Compile ``entries``; a bad regex is a ConfigError naming ``key``."""
        globs: list[str] = []
        patterns: list[re.Pattern[str]] = []
        for entry in entries:
            if not entry.startswith("^"):
                globs.append(entry.lower().rstrip("."))
                continue
            try:
                patterns.append(re.compile(entry))
            except re.error as exc:
                raise ConfigError(f"{key}: bad regex {entry!r}: {exc}") from exc
        return cls(tuple(globs), tuple(patterns))

    @property
    def empty(self) -> bool:
        """Whether the list names nothing (and so allows any origin)."""
        return not self.globs and not self.patterns

    def matches(self, url: str) -> bool:
        """Whether ``url`` (absolute http(s)) matches an entry."""
        try:
            host = (urlsplit(url).hostname or "").rstrip(".")
        except ValueError:
            return False
        if any(fnmatch.fnmatchcase(host, glob) for glob in self.globs):
            return True
        return any(pattern.match(url) for pattern in self.patterns)

    def allows(self, url: str) -> bool:
        """Whether ``url`` may be fetched: an empty list allows any."""
        return self.empty or self.matches(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    """One tenant's settings, resolved against the global ones."""

    name: str
    dialects: frozenset[Dialect]
    cloudimage_without_v7: bool
    signing_keys: tuple[str, ...]
    allow_unsafe: bool
    salt: str | None
    signature_length: int
    security: CloudimageSecurity
    unsigned_origins: OriginAllowlist
    origin_prefix: str | None
    aliases: Mapping[str, str]
    allowed_origins: OriginAllowlist
    default_route: str | None
    namespace: str
    imaging: ImagingConfig
    presets: Mapping[str, str]
    only_presets: bool
    allowed_widths: tuple[int, ...]
    max_dpr: float
    http_schemes: frozenset[str] = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class TenantDirectory:
    """Tenants by lower-case host name, and the one unknown hosts get (None = 421)."""

    by_host: Mapping[str, Tenant]
    default: Tenant | None

    def resolve(self, host: str | None) -> Tenant | None:
        """The tenant for a ``Host`` header (port and trailing dot ignored), or the default."""
        name = _host_name(host or "")
        return self.by_host.get(name, self.default)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


def build_directory(config: Config) -> TenantDirectory | None:
    """The tenants of ``config``, checked; None when ``tenants.sites`` is empty."""
    section = config.tenants
    if not section.sites:
        return None
    shared = _strings(section.presets, "tenants.presets")
    tenants: dict[str, Tenant] = {}
    by_host: dict[str, Tenant] = {}
    for index, site in enumerate(section.sites):
        key = f"tenants.sites[{index}]"
        if site.name in tenants:
            raise ConfigError(f"{key}.name: {site.name!r} is used twice")
        tenant = _tenant(config, site, shared, key)
        tenants[site.name] = tenant
        for host in site.hosts:
            name = _host_name(host)
            if name in by_host:
                raise ConfigError(f"{key}.hosts: {host!r} belongs to two tenants")
            by_host[name] = tenant
    default = None
    if section.default is not None:
        default = tenants.get(section.default)
        if default is None:
            raise ConfigError(f"tenants.default: no tenant is named {section.default!r}")
    return TenantDirectory(types.MappingProxyType(by_host), default)


def _tenant(config: Config, site: TenantConfig, shared: Mapping[str, str], key: str) -> Tenant:
    _check_site(site, key)
    keys = (site.key, *site.previous_keys) if site.key else config.signing_keys
    allow_unsafe = config.security.allow_unsafe if site.allow_unsafe is None else site.allow_unsafe
    if "thumbor" in site.dialects and not keys and not allow_unsafe:
        raise ConfigError(f"{key}.key: the thumbor dialect needs a key or allow_unsafe")
    aliases = _strings(site.aliases, f"{key}.aliases")
    for alias in aliases:
        if not _ALIAS.fullmatch(alias):
            raise ConfigError(f"{key}.aliases: {alias!r} must look like _name_")
    imaging = dataclasses.replace(
        config.imaging,
        auto_webp=config.imaging.auto_webp if site.auto_webp is None else site.auto_webp,
        auto_avif=config.imaging.auto_avif if site.auto_avif is None else site.auto_avif,
    )
    return Tenant(
        name=site.name,
        dialects=frozenset(site.dialects),
        cloudimage_without_v7=site.cloudimage_without_v7,
        signing_keys=keys,
        allow_unsafe=allow_unsafe,
        salt=site.salt,
        signature_length=site.signature_length,
        security=site.security,
        unsigned_origins=OriginAllowlist.parse(site.unsigned_origins, f"{key}.unsigned_origins"),
        origin_prefix=site.origin_prefix,
        aliases=aliases,
        allowed_origins=OriginAllowlist.parse(site.allowed_origins, f"{key}.allowed_origins"),
        default_route=site.default_route,
        namespace=site.namespace or site.name,
        imaging=imaging,
        presets=types.MappingProxyType({**shared, **_strings(site.presets, f"{key}.presets")}),
        only_presets=site.only_presets,
        allowed_widths=tuple(sorted(set(site.allowed_widths))),
        max_dpr=site.max_dpr,
        http_schemes=_http_schemes(config),
    )


_HTTP_LOADERS = frozenset({"http", "https", "loaders.http:HttpLoader"})


def _http_schemes(config: Config) -> frozenset[str]:
    """The schemes of absolute origins that reach an HTTP loader (a route or the default)."""
    if config.loader.use in _HTTP_LOADERS:
        return frozenset({"http", "https"})
    prefixes = [route.prefix.lower() for route in config.routes]
    return frozenset(
        scheme
        for scheme in ("http", "https")
        if any(f"{scheme}://".startswith(prefix) for prefix in prefixes)
    )


def _check_site(site: TenantConfig, key: str) -> None:
    """The single-site checks a field's type cannot express."""
    if not site.dialects:
        raise ConfigError(f"{key}.dialects: enable at least one dialect")
    if site.security != "none" and not site.salt:
        raise ConfigError(f"{key}.salt: security {site.security!r} needs a salt")
    if not 6 <= site.signature_length <= 40:
        raise ConfigError(f"{key}.signature_length: must be between 6 and 40")
    if any(width <= 0 for width in site.allowed_widths):
        raise ConfigError(f"{key}.allowed_widths: widths must be greater than 0")
    if site.max_dpr < 1:
        raise ConfigError(f"{key}.max_dpr: must be 1 or more")


def _strings(mapping: Mapping[str, object], key: str) -> Mapping[str, str]:
    for name, value in mapping.items():
        if not isinstance(value, str):
            raise ConfigError(f"{key}.{name}: expected a string")
    return types.MappingProxyType({str(k): str(v) for k, v in mapping.items()})
