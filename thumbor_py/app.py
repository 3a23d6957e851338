"""``create_app(config)``: the aiohttp application, its routes, error middleware and lifecycle."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from thumbor_py import metrics, signing, url
from thumbor_py.coherence import Coherence, CoherenceSettings
from thumbor_py.config import Config
from thumbor_py.errors import ConfigError, HttpError, OverloadedError
from thumbor_py.imaging.filters import build_registry
from thumbor_py.imaging.transform import Renderer
from thumbor_py.logs import REQUEST_ID
from thumbor_py.negotiation import negotiate
from thumbor_py.pipeline import Outcome, Pipeline, StoragePolicy
from thumbor_py.plugins import Lifecycle, PluginContext, ResultStorage, create_plugin
from thumbor_py.purge_logs import build_purge_log
from thumbor_py.results import GuardedResultStorage
from thumbor_py.routing import build_loader

log = logging.getLogger("thumbor_py")

CONFIG_KEY = web.AppKey("config", Config)
PIPELINE_KEY = web.AppKey("pipeline", Pipeline)
STORAGE_KEY = web.AppKey("result_storage", GuardedResultStorage)
COHERENCE_KEY = web.AppKey("coherence", Coherence)
REQUEST_ID_HEADER = "X-Request-ID"
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# How long shutdown waits for result-storage writes still in flight.
DRAIN_TIMEOUT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class _Resources:
    """What the app owns and must start and close: plugins and thread pools."""

    plugins: tuple[object, ...]
    executors: tuple[ThreadPoolExecutor, ...]


def create_app(config: Config) -> web.Application:
    """Build the application for ``config``; plugins are resolved here, before serving."""
    config.validate()
    app = web.Application(middlewares=[error_middleware])
    app[CONFIG_KEY] = config
    render_pool = ThreadPoolExecutor(
        max_workers=config.server.render_threads, thread_name_prefix="thumbor-py-render"
    )
    io_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="thumbor-py-io")
    context = PluginContext(max_source_bytes=config.imaging.max_source_bytes, executor=io_pool)
    loader = build_loader(config, context)
    storage = _build_storage(config, context)
    if storage is not None:
        app[STORAGE_KEY] = storage
    purge_log = build_purge_log(config, io_pool)
    app[COHERENCE_KEY] = Coherence(purge_log, loader, _coherence_settings(config))
    app[PIPELINE_KEY] = Pipeline(
        loader=loader,
        renderer=Renderer(config.imaging, build_registry()),
        executor=render_pool,
        max_pending=config.server.render_threads + config.server.render_queue,
        storage=storage,
        policy=StoragePolicy(
            store_unsafe=config.result_storage.store_unsafe,
            expires_after=config.result_storage.expires_after,
        ),
        deadline=config.server.request_timeout,
        coherence=app[COHERENCE_KEY],
    )
    plugins = (loader, purge_log) + ((storage.storage,) if storage is not None else ())
    app.cleanup_ctx.append(_lifecycle(_Resources(plugins, (render_pool, io_pool))))
    app.router.add_get("/healthcheck", healthcheck, name="healthcheck")
    app.router.add_get("/readyz", readyz, name="readyz")
    if config.metrics.enabled:
        app.router.add_get("/metrics", metrics_endpoint, name="metrics")
    if config.admin.token:
        app.router.add_delete("/admin/results", purge, name="admin")
    app.router.add_get("/{path:.*}", image, name="image")
    return app


def _coherence_settings(config: Config) -> CoherenceSettings:
    imaging, interval = config.imaging, config.coherence.check_interval
    after, grace = imaging.revalidate_after, imaging.revalidate_grace
    if interval < 0 or grace < 0 or (after is not None and after < 0):
        raise ConfigError("coherence.check_interval, imaging.revalidate_*: must be 0 or more")
    return CoherenceSettings(
        check_interval=interval, revalidate_after=after, revalidate_grace=grace
    )


def _build_storage(config: Config, context: PluginContext) -> GuardedResultStorage | None:
    settings = config.result_storage
    if not settings.use:
        return None
    storage = create_plugin(
        settings,
        ResultStorage,  # type: ignore[type-abstract]
        "result_storage",
        "result_storage",
        context,
    )
    return GuardedResultStorage(
        storage, timeout=settings.timeout, pause=settings.pause_after_failure
    )


def _lifecycle(resources: _Resources) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        started = []
        try:
            for plugin in resources.plugins:
                if isinstance(plugin, Lifecycle):
                    await plugin.start()
                    started.append(plugin)
            yield
        finally:
            await app[PIPELINE_KEY].drain(DRAIN_TIMEOUT)
            for plugin in reversed(started):
                await plugin.aclose()
            for pool in resources.executors:
                # Joining threads blocks: do it off the loop.
                await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    return lifecycle


async def healthcheck(_request: web.Request) -> web.Response:
    """Thumbor's liveness answer."""
    return web.Response(text="WORKING", headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the configured result storage answers within its timeout."""
    storage = request.app.get(STORAGE_KEY)
    if storage is not None:
        problem = await storage.check()
        if problem is not None:
            return web.Response(status=503, text=f"not ready: {problem}", headers=_NO_STORE)
    return web.Response(text="READY", headers=_NO_STORE)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition, optionally behind a bearer token."""
    token = request.app[CONFIG_KEY].metrics.token
    if token and not _bearer_matches(request, token):
        return web.Response(status=401, text="missing or wrong bearer token", headers=_NO_STORE)
    body, content_type = await asyncio.to_thread(metrics.exposition)  # reads /proc and files
    return web.Response(body=body, headers={"Content-Type": content_type, **_NO_STORE})


def _bearer_matches(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


async def image(request: web.Request) -> web.StreamResponse:
    """Parse, verify and answer one Thumbor URL."""
    config = request.app[CONFIG_KEY]
    raw_path = request.rel_url.raw_path
    parsed = url.parse(raw_path)
    signing.verify(
        parsed, raw_path, keys=config.signing_keys, allow_unsafe=config.security.allow_unsafe
    )
    negotiated = negotiate(parsed, request.headers.get("Accept"), config.imaging)
    outcome = await request.app[PIPELINE_KEY].process(
        parsed,
        signed_path=url.split_signed_path(raw_path)[1],
        format_class=negotiated.format_class,
        if_none_match=request.headers.get("If-None-Match"),
    )
    return _respond(request, config, outcome, vary=negotiated.varies)


def _respond(request: web.Request, config: Config, outcome: Outcome, *, vary: bool) -> web.Response:
    headers = {"Content-Type": outcome.content_type}
    if vary:
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


async def purge_source(config: Config, source: str) -> int:
    """Purge ``source`` from the configured result storage (the ``purge`` command)."""
    app = create_app(config)
    storage = app.get(STORAGE_KEY)
    if storage is None:
        raise ConfigError("result_storage.use: no result storage is configured")
    runner = web.AppRunner(app)
    await runner.setup()  # starts the plugins' clients, as serving would
    try:
        return await app[COHERENCE_KEY].purge(source, storage.storage.purge)
    finally:
        await runner.cleanup()


async def purge(request: web.Request) -> web.Response:
    """``DELETE /admin/results?source=IMAGE`` with ``Authorization: Bearer TOKEN``."""
    config = request.app[CONFIG_KEY]
    if not _bearer_matches(request, config.admin.token or ""):
        return web.Response(status=401, text="missing or wrong bearer token", headers=_NO_STORE)
    source = request.query.get("source")
    if not source:
        return web.Response(
            status=400, text="give the source to purge as ?source=", headers=_NO_STORE
        )
    storage = request.app.get(STORAGE_KEY)
    if storage is None:
        return web.Response(status=409, text="no result storage is configured", headers=_NO_STORE)
    count = await request.app[COHERENCE_KEY].purge(source, storage.storage.purge)
    return web.json_response({"source": source, "purged": count}, headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a one-line plain-text answer; never leak a traceback."""
    request_id = request.headers.get(REQUEST_ID_HEADER, "")
    if not _TOKEN.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    REQUEST_ID.set(request_id)  # this request's task only: every log line carries it
    try:
        response = await handler(request)
    except HttpError as exc:
        response = _error_response(request, exc)
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.reason)
    except web.HTTPException as exc:
        response = web.Response(status=exc.status, text=exc.reason, headers=_NO_STORE)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        response = web.Response(
            status=500, text=f"internal error (request id {request_id})", headers=_NO_STORE
        )
    response.headers[REQUEST_ID_HEADER] = request_id
    route = request.match_info.route.name or "unmatched"
    metrics.REQUESTS.labels(route=route, status=str(response.status)).inc()
    return response


def _error_response(request: web.Request, exc: HttpError) -> web.Response:
    headers = dict(_NO_STORE)
    error_max_age = request.app[CONFIG_KEY].http.error_max_age
    if exc.status == 404 and error_max_age > 0:
        headers["Cache-Control"] = f"public, max-age={error_max_age}"
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(status=exc.status, text=exc.reason, headers=headers)
