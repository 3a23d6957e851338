"""``create_app(config)``: the aiohttp application, its routes, error middleware and lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from thumbor_py import signing, url
from thumbor_py.config import Config
from thumbor_py.errors import HttpError, OverloadedError
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.transform import Rendered, Renderer
from thumbor_py.negotiation import negotiate
from thumbor_py.pipeline import Pipeline
from thumbor_py.plugins import Lifecycle, Loader, PluginContext
from thumbor_py.routing import build_loader

log = logging.getLogger("thumbor_py")

CONFIG_KEY = web.AppKey("config", Config)
PIPELINE_KEY = web.AppKey("pipeline", Pipeline)
LOADER_KEY = web.AppKey("loader", Loader)  # type: ignore[type-abstract]
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: Config) -> web.Application:
    """Build the application for ``config``; plugins are resolved here, before serving."""
    config.validate()
    app = web.Application(middlewares=[error_middleware])
    app[CONFIG_KEY] = config
    executor = ThreadPoolExecutor(
        max_workers=config.server.render_threads, thread_name_prefix="thumbor-py-render"
    )
    context = PluginContext(max_source_bytes=config.imaging.max_source_bytes, executor=executor)
    loader = build_loader(config, context)
    renderer = Renderer(config.imaging, build_registry())
    app[LOADER_KEY] = loader
    app[PIPELINE_KEY] = Pipeline(
        loader=loader,
        renderer=renderer,
        executor=executor,
        max_pending=config.server.render_threads + config.server.render_queue,
    )
    app.cleanup_ctx.append(_lifecycle(loader, executor))
    app.router.add_get("/healthcheck", healthcheck)
    app.router.add_get("/{path:.*}", image)
    return app


def _lifecycle(
    loader: Loader, executor: ThreadPoolExecutor
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        if isinstance(loader, Lifecycle):
            await loader.start()
        try:
            yield
        finally:
            if isinstance(loader, Lifecycle):
                await loader.aclose()
            # Joining the render threads blocks: do it off the loop.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    return lifecycle


async def healthcheck(_request: web.Request) -> web.Response:
    """Thumbor's liveness answer."""
    return web.Response(text="WORKING", headers={"Cache-Control": "no-store"})


async def image(request: web.Request) -> web.StreamResponse:
    """Parse, verify and render one Thumbor URL."""
    config = request.app[CONFIG_KEY]
    raw_path = request.rel_url.raw_path
    parsed = url.parse(raw_path)
    signing.verify(
        parsed, raw_path, keys=config.signing_keys, allow_unsafe=config.security.allow_unsafe
    )
    negotiated = negotiate(parsed, request.headers.get("Accept"), config.imaging)
    rendered = await request.app[PIPELINE_KEY].process(parsed, negotiated.format_class)
    return _respond(request, config, rendered, vary=negotiated.varies)


def _respond(
    request: web.Request, config: Config, rendered: Rendered, *, vary: bool
) -> web.Response:
    body = rendered.data
    content_type = rendered.content_type
    callback = request.query.get("callback")
    if content_type == "application/json" and callback and _REQUEST_ID.fullmatch(callback):
        body = f"{callback}(".encode() + body + b");"
        content_type = "text/javascript"
    headers = {"Content-Type": content_type}
    if vary:
        headers["Vary"] = "Accept"
    max_age = config.http.max_age if rendered.max_age is None else rendered.max_age
    if max_age > 0:
        headers["Cache-Control"] = f"public, max-age={max_age}"
    if config.http.etags:
        etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        headers["ETag"] = etag
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = (item.strip().removeprefix("W/") for item in header.split(","))
    return etag in candidates


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a one-line plain-text answer; never leak a traceback."""
    request_id = request.headers.get(REQUEST_ID_HEADER, "")
    if not _REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    try:
        response = await handler(request)
    except HttpError as exc:
        response = _error_response(request, exc)
        log.info(
            "%s %s -> %d %s [%s]", request.method, request.path, exc.status, exc.reason, request_id
        )
    except web.HTTPException as exc:
        response = web.Response(
            status=exc.status, text=exc.reason, headers={"Cache-Control": "no-store"}
        )
    except Exception:
        log.exception("unexpected error on %s %s [%s]", request.method, request.path, request_id)
        response = web.Response(
            status=500,
            text=f"internal error (request id {request_id})",
            headers={"Cache-Control": "no-store"},
        )
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _error_response(request: web.Request, exc: HttpError) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    error_max_age = request.app[CONFIG_KEY].http.error_max_age
    if exc.status == 404 and error_max_age > 0:
        headers["Cache-Control"] = f"public, max-age={error_max_age}"
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(status=exc.status, text=exc.reason, headers=headers)
