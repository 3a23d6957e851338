"""The request handler when ``tenants`` are configured: pick the tenant by ``Host``, then the
dialect (Thumbor or Cloudimage), and answer through the same pipeline and response code."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

from aiohttp import web

from thumbor_py import hints, presets, signing, url
from thumbor_py.cloudimage import origin as ci_origin
from thumbor_py.cloudimage import resolve
from thumbor_py.cloudimage.params import build_request
from thumbor_py.config import ImagingConfig
from thumbor_py.errors import UrlParseError
from thumbor_py.tenants import Tenant, TenantDirectory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
V7 = "/v7/"


class Answer(Protocol):
    """``app.answer``: a verified request through negotiation, the pipeline and the response."""

    def __call__(
        self,
        request: web.Request,
        parsed: url.ImageRequest,
        signed_path: str,
        *,
        imaging: ImagingConfig,
        tenant: str = "default",
    ) -> Awaitable[web.Response]: ...


def site_handler(directory: TenantDirectory, answer: Answer) -> Handler:
    """The catch-all image handler for a multi-tenant server."""

    async def image(request: web.Request) -> web.StreamResponse:
        tenant = directory.resolve(request.host)
        if tenant is None:
            raise web.HTTPMisdirectedRequest(text="this server does not serve that host name")
        raw_path = request.rel_url.raw_path
        if _is_cloudimage(tenant, raw_path):
            return await _cloudimage(request, tenant, answer)
        if "thumbor" not in tenant.dialects:
            raise UrlParseError("not a Cloudimage URL: expected /v7/ORIGIN?operations")
        return await _thumbor(request, tenant, answer)

    return image


def _is_cloudimage(tenant: Tenant, raw_path: str) -> bool:
    if "cloudimage" not in tenant.dialects:
        return False
    if raw_path.startswith(V7):
        return True
    if not tenant.cloudimage_without_v7:
        return False
    if "thumbor" not in tenant.dialects:
        return True
    first = raw_path[1:].partition("/")[0]
    return first != "unsafe" and len(unquote(first)) != url.SIGNATURE_LENGTH


async def _cloudimage(request: web.Request, tenant: Tenant, answer: Answer) -> web.Response:
    raw_path = request.rel_url.raw_path
    path = raw_path[len(V7) - 1 :] if raw_path.startswith(V7) else raw_path
    split = ci_origin.split(path, request.rel_url.raw_query_string)
    origin = resolve.origin_url(tenant, split.origin)
    resolve.check_origin(tenant, origin)
    params = resolve.verified_params(tenant, split, origin)
    params = presets.expand(params, tenant.presets, only=tenant.only_presets)
    hinted = hints.apply(
        params, request.headers, allowed_widths=tenant.allowed_widths, max_dpr=tenant.max_dpr
    )
    parsed = build_request(resolve.image_of(origin), hinted.params, max_dpr=tenant.max_dpr)
    signed_path = f"ci/{tenant.namespace}/{parsed.path}"
    response = await answer(
        request, parsed, signed_path, imaging=tenant.imaging, tenant=tenant.name
    )
    return _with_hints(response, hinted.vary)


async def _thumbor(request: web.Request, tenant: Tenant, answer: Answer) -> web.Response:
    raw_path = request.rel_url.raw_path
    parsed = url.parse(raw_path)
    signing.verify(parsed, raw_path, keys=tenant.signing_keys, allow_unsafe=tenant.allow_unsafe)
    signed_path = url.split_signed_path(raw_path)[1]
    expanded = presets.apply_to_thumbor(
        parsed, tenant.presets, only=tenant.only_presets, max_dpr=tenant.max_dpr
    )
    if expanded is not parsed:
        # The preset's current definition is part of the key: editing it renders anew.
        signed_path = f"{signed_path}#{expanded.path}"
    expanded, vary = hints.apply_to_request(
        _routed(expanded, tenant),
        request.headers,
        allowed_widths=tenant.allowed_widths,
        max_dpr=tenant.max_dpr,
    )
    if vary:
        signed_path = f"{signed_path}#{expanded.width}x{expanded.height}"
    keyed = f"t/{tenant.namespace}/{signed_path}"
    response = await answer(request, expanded, keyed, imaging=tenant.imaging, tenant=tenant.name)
    return _with_hints(response, vary)


def _routed(request: url.ImageRequest, tenant: Tenant) -> url.ImageRequest:
    """Prefix ``default_route`` to image paths that name no scheme (``a.jpg``)."""
    if tenant.default_route is None or "://" in request.source:
        return request
    return dataclasses.replace(request, image=tenant.default_route + request.image.lstrip("/"))


def _with_hints(response: web.Response, vary: tuple[str, ...]) -> web.Response:
    if not vary:
        return response
    existing = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    response.headers["Vary"] = ", ".join([*existing, *vary])
    response.headers["Accept-CH"] = hints.ACCEPT_CH
    return response
