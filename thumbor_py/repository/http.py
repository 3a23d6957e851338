"""Thumbor's upload API over HTTP: ``POST /image``, ``GET|HEAD|PUT|DELETE /image/<id>``.

Statuses as Thumbor answers them: 201 with ``Location`` for a new image, 204 for a
replacement or a deletion, 404 for an unknown id, 405 for a method the repository does not
allow, 412 over the size limit or under the minimum dimensions, 415 for a body that is not
an image. Every call needs an API key with the operation's scope (unless the repository
sets ``require_key: false``); the body is read only after the key was checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from thumbor_py import metrics
from thumbor_py.config import ApiScope
from thumbor_py.errors import (
    PreconditionFailedError,
    SourceNotFoundError,
    UnsupportedMediaTypeError,
)
from thumbor_py.repository.build import Repositories
from thumbor_py.repository.service import Repository

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NO_STORE = {"Cache-Control": "no-store"}


def add_routes(app: web.Application, repositories: Repositories, fallback: Handler) -> None:
    """Register the upload API (before the catch-all image route, ``fallback``)."""
    for path, handler, name in (
        ("/image", _collection(repositories), "upload"),
        ("/image/{id:.+}", _item(repositories), "upload_item"),
    ):
        app.router.add_route("*", path, where_enabled(repositories, handler, fallback), name=name)


def where_enabled(repositories: Repositories, handler: Handler, fallback: Handler) -> Handler:
    """``handler`` on hosts with a repository; elsewhere these paths are image URLs as
    before (a Cloudimage origin may well be ``image/cat.jpg``)."""

    async def route(request: web.Request) -> web.StreamResponse:
        if repositories.for_host(request.host) is not None:
            return await handler(request)
        if request.method in ("GET", "HEAD"):
            return await fallback(request)
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])

    return route


def _repository(repositories: Repositories, request: web.Request) -> Repository:
    repository = repositories.for_host(request.host)
    if repository is None:
        raise SourceNotFoundError("this host has no image repository")
    return repository


def _authorize(repository: Repository, request: web.Request, scope: ApiScope) -> str | None:
    """Check the key; the key's name (the owner of what it uploads), None without a key."""
    key = repository.keys.require(request.headers, scope)
    return None if key is None else key.name


def _collection(repositories: Repositories) -> Handler:
    async def collection(request: web.Request) -> web.StreamResponse:
        repository = _repository(repositories, request)
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        owner = _authorize(repository, request, "upload")
        data, slug = await read_body(request, repository)
        image_id = await repository.create(data, slug, owner)
        return web.Response(status=201, headers={"Location": f"/image/{image_id}", **_NO_STORE})

    return collection


def _allowed(repository: Repository) -> list[str]:
    methods = ["GET", "HEAD"]
    if repository.settings.allow_put:
        methods.append("PUT")
    if repository.settings.allow_delete:
        methods.append("DELETE")
    return methods


def _item(repositories: Repositories) -> Handler:
    async def item(request: web.Request) -> web.StreamResponse:
        repository = _repository(repositories, request)
        if request.method not in _allowed(repository):
            raise web.HTTPMethodNotAllowed(request.method, _allowed(repository))
        image_id = request.match_info["id"]
        if request.method == "PUT":
            owner = _authorize(repository, request, "upload")
            data = (await read_body(request, repository))[0]
            await repository.replace(image_id, data, owner)
            return web.Response(status=204, headers=_NO_STORE)
        if request.method == "DELETE":
            _authorize(repository, request, "delete")
            await repository.delete(image_id)
            return web.Response(status=204, headers=_NO_STORE)
        _authorize(repository, request, "read")
        data, content_type = await repository.read(image_id)
        return web.Response(
            body=data, headers={"Content-Type": content_type, "Cache-Control": "private, no-cache"}
        )

    return item


async def read_body(request: web.Request, repository: Repository) -> tuple[bytes, str | None]:
    """The image and its name: the raw body and ``Slug``, or, as Thumbor also accepts, the
    ``media`` part of a ``multipart/form-data`` body (and its file name when no ``Slug``).
    Refused (412) as soon as it is over the limit."""
    limit = repository.settings.limits.max_bytes
    slug = request.headers.get("Slug")
    if request.content_type == "multipart/form-data":
        data, filename = await _media_part(request, limit)
        return data, slug or filename
    if request.content_length is not None:
        _check_size(repository, request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        _check_size(repository, size)
        chunks.append(chunk)
    return b"".join(chunks), slug


async def _media_part(request: web.Request, limit: int) -> tuple[bytes, str | None]:
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "media":
            continue
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.read_chunk(64 * 1024):
            size += len(chunk)
            if size > limit:
                _refused(412)
                raise PreconditionFailedError(f"image is over the {limit}-byte upload limit")
            chunks.append(chunk)
        # Browsers and aiohttp send a name with spaces percent-encoded ("from%20form.jpg").
        return b"".join(chunks), unquote(part.filename) if part.filename else None
    raise UnsupportedMediaTypeError("a multipart body needs its image in the 'media' field")


def _check_size(repository: Repository, size: int) -> None:
    if size > repository.settings.limits.max_bytes:
        _refused(412)
        repository.check_size(size)


def _refused(status: int) -> None:
    metrics.REPOSITORY.labels(operation="refused", outcome=str(status)).inc()
