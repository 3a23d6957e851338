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
from thumbor_py.config import Config
from thumbor_py.errors import UrlParseError
from thumbor_py.negotiation import Negotiated, negotiate
from thumbor_py.pipeline import Outcome, Pipeline
from thumbor_py.repository.focal import FocalPoints
from thumbor_py.tenants import Tenant, TenantDirectory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
V7 = "/v7/"


class Respond(Protocol):
    """``app._respond``: one outcome of the pipeline as an HTTP response."""

    def __call__(
        self, request: web.Request, config: Config, outcome: Outcome, negotiated: Negotiated
    ) -> web.Response: ...


def site_handler(
    directory: TenantDirectory,
    config_key: web.AppKey[Config],
    pipeline_key: web.AppKey[Pipeline],
    respond: Respond,
    *,
    focal: FocalPoints | None = None,
) -> Handler:
    """The catch-all image handler for a multi-tenant server (``focal``: recorded focal
    points of registered originals, issue 17)."""

    async def image(request: web.Request) -> web.StreamResponse:
        tenant = directory.resolve(request.host)
        if tenant is None:
            raise web.HTTPMisdirectedRequest(text="this server does not serve that host name")
        config = request.app[config_key]
        pipeline = request.app[pipeline_key]
        raw_path = request.rel_url.raw_path
        if _is_cloudimage(tenant, raw_path):
            return await _cloudimage(request, tenant, config, pipeline, respond, focal)
        if "thumbor" not in tenant.dialects:
            raise UrlParseError("not a Cloudimage URL: expected /v7/ORIGIN?operations")
        return await _thumbor(request, tenant, config, pipeline, respond, focal)

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


async def _cloudimage(
    request: web.Request,
    tenant: Tenant,
    config: Config,
    pipeline: Pipeline,
    respond: Respond,
    focal: FocalPoints | None = None,
) -> web.StreamResponse:
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
    negotiated = negotiate(parsed, request.headers.get("Accept"), tenant.imaging)
    signed_path = f"ci/{tenant.namespace}/{parsed.path}"
    if focal is not None:
        parsed, signed_path = await focal.apply(tenant.name, parsed, signed_path)
    outcome = await pipeline.process(
        parsed,
        signed_path=signed_path,
        format_class=negotiated.format_class,
        if_none_match=request.headers.get("If-None-Match"),
    )
    response = respond(request, config, outcome, negotiated)
    return _with_hints(response, hinted.vary)


async def _thumbor(
    request: web.Request,
    tenant: Tenant,
    config: Config,
    pipeline: Pipeline,
    respond: Respond,
    focal: FocalPoints | None = None,
) -> web.StreamResponse:
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
    negotiated = negotiate(expanded, request.headers.get("Accept"), tenant.imaging)
    if focal is not None:
        expanded, signed_path = await focal.apply(tenant.name, expanded, signed_path)
    outcome = await pipeline.process(
        expanded,
        signed_path=f"t/{tenant.namespace}/{signed_path}",
        format_class=negotiated.format_class,
        if_none_match=request.headers.get("If-None-Match"),
    )
    return _with_hints(respond(request, config, outcome, negotiated), vary)


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
