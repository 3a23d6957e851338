"""From a split Cloudimage URL to what the pipeline loads, for one tenant: the origin (alias,
prefix, allowlist) and the parameters once the URL's signature or seal is checked."""

from __future__ import annotations

import re
from urllib.parse import unquote

from thumbor_py.cloudimage import security
from thumbor_py.cloudimage.origin import SplitUrl
from thumbor_py.errors import SignatureError, SourceForbiddenError, UrlParseError
from thumbor_py.tenants import Tenant

_ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)
_ALIAS = re.compile(r"(_[A-Za-z0-9-]+_)/(.*)", re.DOTALL)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def origin_url(tenant: Tenant, origin: str) -> str:
    """The absolute origin (still percent-encoded) for the URL's origin part."""
    if _ABSOLUTE.match(origin):
        return origin
    alias = _ALIAS.fullmatch(origin)
    if alias is not None:
        target = tenant.aliases.get(alias.group(1))
        if target is None:
            raise UrlParseError(f"unknown origin alias {alias.group(1)}")
        return target + alias.group(2)
    if _SCHEME.match(origin):
        raise SourceForbiddenError("origin must be http(s), an alias or a relative path")
    prefix = tenant.origin_prefix or tenant.default_route
    if prefix is None:
        raise UrlParseError("relative origin, but this host has no origin_prefix")
    return prefix + origin.lstrip("/")


def image_of(origin: str) -> str:
    """``ImageRequest.image`` for an origin: http(s) URLs kept byte for byte (the loader sees
    them unchanged, their query included); other routes decoded once, as Thumbor does."""
    if _ABSOLUTE.match(origin):
        return origin.replace("%", "%25")
    path, _, _query = origin.partition("?")  # a bucket key has no query
    return path


def check_origin(tenant: Tenant, origin: str) -> None:
    """Refuse an http(s) origin outside the tenant's ``allowed_origins``."""
    if not _ABSOLUTE.match(origin):
        return
    if origin.partition(":")[0].lower() not in tenant.http_schemes:
        raise SourceForbiddenError("this server has no http(s) route for absolute origins")
    if not tenant.allowed_origins.allows(unquote(origin)):
        raise SourceForbiddenError("origin is not in this host's allowed_origins")


def verified_params(tenant: Tenant, split: SplitUrl, origin: str) -> dict[str, str]:
    """The URL's parameters once its signature or seal holds (sealed ones override)."""
    params = dict(split.params)
    if tenant.security == "none" or tenant.salt is None:
        return params
    sign, seal = split.get("ci_sign"), split.get("ci_seal")
    wants_sign = tenant.security in ("signature", "signature_or_seal")
    wants_seal = tenant.security in ("seal", "signature_or_seal")
    if sign is not None and wants_sign:
        expected = security.signature(tenant.salt, split.signed_text, tenant.signature_length)
        if not security.matches(expected, sign):
            raise SignatureError("ci_sign does not match")
        return params
    if seal is not None and wants_seal:
        return _unsealed(tenant, tenant.salt, split, params, seal)
    if _ABSOLUTE.match(origin) and tenant.unsigned_origins.matches(unquote(origin)):
        return params
    raise SignatureError(f"this host requires a {tenant.security.replace('_', ' ')}")


def _unsealed(
    tenant: Tenant, salt: str, split: SplitUrl, params: dict[str, str], seal: str
) -> dict[str, str]:
    eqs = split.get("ci_eqs") or ""
    path = split.signed_text.partition("?")[0]
    expected = security.seal(salt, path, eqs, tenant.signature_length)
    if not security.matches(expected, seal):
        raise SignatureError("ci_seal does not match")
    sealed = dict(security.decode_eqs(eqs)) if eqs else {}
    return {**params, **sealed}
