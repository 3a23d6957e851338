"""``create_app(config)``: the aiohttp application, its routes, error middleware and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Unpack

from aiohttp import web

from thumbor_py import metrics, signing, url
from thumbor_py.assembly import Given, Parts, build_parts
from thumbor_py.coherence import Coherence
from thumbor_py.config import Config, ImagingConfig
from thumbor_py.errors import (
    BadRequestError,
    ConfigError,
    ConflictError,
    HttpError,
    NotReadyError,
    UnauthorizedError,
)
from thumbor_py.logs import REQUEST_ID, new_request_id
from thumbor_py.negotiation import Negotiated, answer_varies, negotiate
from thumbor_py.pipeline import Outcome, Pipeline
from thumbor_py.plugins import Lifecycle
from thumbor_py.repository import http as repository_http
from thumbor_py.repository import http_images, upload_page
from thumbor_py.repository.build import Repositories
from thumbor_py.repository.focal import FocalPoints
from thumbor_py.results import GuardedResultStorage, readiness
from thumbor_py.sites import site_handler

log = logging.getLogger("thumbor_py")

CONFIG_KEY = web.AppKey("config", Config)
PIPELINE_KEY = web.AppKey("pipeline", Pipeline)
STORAGE_KEY = web.AppKey("result_storage", GuardedResultStorage)
COHERENCE_KEY = web.AppKey("coherence", Coherence)
FOCAL_KEY = web.AppKey("focal_points", FocalPoints)
REPOSITORIES_KEY = web.AppKey("repositories", Repositories)
REQUEST_ID_HEADER = "X-Request-ID"
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# How long shutdown waits for result-storage writes still in flight.
DRAIN_TIMEOUT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: Config, **given: Unpack[Given]) -> web.Application:
    """The application for ``config``. Every part is built here, before serving, by
    :func:`thumbor_py.assembly.build_parts`; parts given by keyword (``loader``,
    ``result_storage``, ``detectors``, ``registry``, ``purge_log``) are used as they are."""
    parts = build_parts(config, **given)
    app = web.Application(middlewares=[error_middleware])
    app.on_response_prepare.append(_security_headers)
    app[CONFIG_KEY] = config
    app[PIPELINE_KEY] = parts.pipeline
    app[COHERENCE_KEY] = parts.coherence
    if parts.result_storage is not None:
        app[STORAGE_KEY] = parts.result_storage
    app.cleanup_ctx.append(_lifecycle(parts))
    app.router.add_get("/healthcheck", healthcheck, name="healthcheck")
    app.router.add_get("/readyz", readyz, name="readyz")
    if config.metrics.enabled:
        app.router.add_get("/metrics", metrics_endpoint, name="metrics")
    if config.admin.token:
        app.router.add_delete("/admin/results", purge, name="admin")
    # Registered before the image route so that no method on it is parsed as an image URL.
    app.router.add_route("*", "/admin/results", admin_other_methods, name="admin_other")
    # --- issue 17: Thumbor's upload API, direct uploads, focal points, the upload page
    repositories = parts.repositories
    focal = None if repositories is None else repositories.focal
    if focal is not None:
        app[FOCAL_KEY] = focal
    handler = image if parts.tenants is None else site_handler(parts.tenants, answer)
    if repositories is not None:  # before the image route, which they fall back to
        app[REPOSITORIES_KEY] = repositories
        repository_http.add_routes(app, repositories, handler)
        http_images.add_routes(app, repositories, handler)
        upload_page.add_route(app, repositories, handler)
    app.router.add_get("/{path:.*}", handler, name="image")
    return app


def _lifecycle(parts: Parts) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        started = []
        try:
            for plugin in parts.plugins:
                if isinstance(plugin, Lifecycle):
                    await plugin.start()
                    started.append(plugin)
            yield
        finally:
            await app[PIPELINE_KEY].drain(DRAIN_TIMEOUT)
            for plugin in reversed(started):
                await plugin.aclose()
            for pool in parts.executors:
                # Joining threads blocks: do it off the loop.
                await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    return lifecycle


async def healthcheck(_request: web.Request) -> web.Response:
    """Thumbor's liveness answer."""
    return web.Response(text="WORKING", headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: ready while images can be served (see ``results.readiness``)."""
    required = request.app[CONFIG_KEY].result_storage.required_for_readiness
    if not (await readiness(request.app.get(STORAGE_KEY), required=required)).ready:
        raise NotReadyError("not ready: result storage unavailable")
    return web.Response(text="READY", headers=_NO_STORE)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition, optionally behind a bearer token."""
    token = request.app[CONFIG_KEY].metrics.token
    if token:
        _require_bearer(request, token)
    body, content_type = await asyncio.to_thread(metrics.exposition)  # reads /proc and files
    return web.Response(body=body, headers={"Content-Type": content_type, **_NO_STORE})


def _require_bearer(request: web.Request, token: str) -> None:
    try:  # bytes that are not UTF-8 arrive as surrogates: such a header matches no token
        given = request.headers.get("Authorization", "").encode("utf-8")
    except UnicodeEncodeError:
        given = b""
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise UnauthorizedError("missing or wrong bearer token")


async def admin_other_methods(request: web.Request) -> web.StreamResponse:
    """``/admin/results`` answers DELETE only (and nothing while ``admin.token`` is unset)."""
    allowed = ["DELETE"] if request.app[CONFIG_KEY].admin.token else []
    raise web.HTTPMethodNotAllowed(request.method, allowed)


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    # Every answer, errors and 304s included: a browser must never sniff a body into HTML.
    response.headers["X-Content-Type-Options"] = "nosniff"


async def image(request: web.Request) -> web.StreamResponse:
    """Parse, verify and answer one Thumbor URL."""
    config = request.app[CONFIG_KEY]
    raw_path = request.rel_url.raw_path
    parsed = url.parse(raw_path)
    signing.verify(
        parsed, raw_path, keys=config.signing_keys, allow_unsafe=config.security.allow_unsafe
    )
    return await answer(request, parsed, url.split_signed_path(raw_path)[1], imaging=config.imaging)


async def answer(
    request: web.Request,
    parsed: url.ImageRequest,
    signed_path: str,
    *,
    imaging: ImagingConfig,
    tenant: str = "default",
) -> web.Response:
    """What every dialect shares once it has a verified request and the path its result key
    comes from: negotiate, the recorded focal point, the pipeline, the response."""
    negotiated = negotiate(parsed, request.headers.get("Accept"), imaging)
    focal = request.app.get(FOCAL_KEY)
    if focal is not None:  # a registered original's recorded focal point (image repository)
        parsed, signed_path = await focal.apply(tenant, parsed, signed_path)
    outcome = await request.app[PIPELINE_KEY].process(
        parsed,
        signed_path=signed_path,
        format_class=negotiated.format_class,
        if_none_match=request.headers.get("If-None-Match"),
    )
    return _respond(request, request.app[CONFIG_KEY], outcome, negotiated)


def _respond(
    request: web.Request, config: Config, outcome: Outcome, negotiated: Negotiated
) -> web.Response:
    headers = {"Content-Type": outcome.content_type}
    if answer_varies(negotiated, animated=outcome.animated, config=config.imaging):
        headers["Vary"] = "Accept"
    max_age = config.http.max_age if outcome.max_age is None else outcome.max_age
    if max_age > 0:
        headers["Cache-Control"] = f"public, max-age={max_age}"
    if outcome.from_storage:
        headers["X-Result-Storage"] = "hit"
    if config.http.etags:
        headers["ETag"] = outcome.etag
        if outcome.not_modified:
            return web.Response(status=304, headers=headers)
    if outcome.redirect is not None:
        headers["Location"] = outcome.redirect
        return web.Response(status=config.result_storage.redirect_status, headers=headers)
    body = outcome.data
    callback = request.query.get("callback")
    if outcome.content_type == "application/json" and callback and _TOKEN.fullmatch(callback):
        # JSONP for meta/, as Thumbor offers it.
        headers["Content-Type"] = "text/javascript"
        body = f"{callback}(".encode() + (body or b"") + b");"
    return web.Response(body=body, headers=headers)


@contextlib.asynccontextmanager
async def started(app: web.Application) -> AsyncIterator[web.Application]:
    """``app`` with its plugins' clients started, as serving would, for a one-off command
    (``purge``, ``storage setup``, ``housekeep``); stopped again on the way out."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def purge_source(config: Config, source: str) -> int:
    """Purge ``source`` from the configured result storage (the ``purge`` command)."""
    app = create_app(config)
    storage = app.get(STORAGE_KEY)
    if storage is None:
        raise ConfigError("result_storage.use: no result storage is configured")
    async with started(app):
        return await app[COHERENCE_KEY].purge(source, storage.purge)


async def purge(request: web.Request) -> web.Response:
    """``DELETE /admin/results?source=IMAGE`` with ``Authorization: Bearer TOKEN``."""
    _require_bearer(request, request.app[CONFIG_KEY].admin.token or "")
    source = request.query.get("source")
    if not source:
        raise BadRequestError("give the source to purge as ?source=")
    storage = request.app.get(STORAGE_KEY)
    if storage is None:
        raise ConflictError("no result storage is configured")
    count = await request.app[COHERENCE_KEY].purge(source, storage.purge)
    return web.json_response({"source": source, "purged": count}, headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a one-line plain-text answer; never leak a traceback."""
    request_id = request.headers.get(REQUEST_ID_HEADER, "")
    if not _TOKEN.fullmatch(request_id):
        request_id = new_request_id()
    REQUEST_ID.set(request_id)  # this request's task only: every log line carries it
    started = time.perf_counter()
    try:
        response = await handler(request)
    except HttpError as exc:
        response = _error_response(request, exc)
        level = logging.WARNING if exc.status >= 500 else logging.INFO
        log.log(level, "%s %s -> %d %s", request.method, request.path, exc.status, exc.reason)
    except web.HTTPException as exc:
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        response = web.Response(status=exc.status, text=exc.reason, headers=_NO_STORE | allow)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        response = web.Response(
            status=500, text=f"internal error (request id {request_id})", headers=_NO_STORE
        )
    response.headers[REQUEST_ID_HEADER] = request_id
    route = request.match_info.route.name or "unmatched"
    metrics.count_request(route, response.status)
    metrics.observe_request(response.status, time.perf_counter() - started)
    return response


def _error_response(request: web.Request, exc: HttpError) -> web.Response:
    headers = dict(_NO_STORE)
    error_max_age = request.app[CONFIG_KEY].http.error_max_age
    if exc.status == 404 and error_max_age > 0:
        headers["Cache-Control"] = f"public, max-age={error_max_age}"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(status=exc.status, text=exc.reason, headers=headers)
