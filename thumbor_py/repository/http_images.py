"""The direct-upload API over HTTP: ``POST /uploads``, ``POST|GET /images``,
``GET|DELETE /images/<id>``. JSON in, JSON out; every call needs an API key with the scope
of its operation (upload, register, read, delete)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from thumbor_py.errors import BadRequestError, PreconditionFailedError, SourceNotFoundError
from thumbor_py.repository.build import Repositories
from thumbor_py.repository.direct import DirectUploads, Metadata, urls
from thumbor_py.repository.http import where_enabled
from thumbor_py.repository.records import ImageRecord
from thumbor_py.repository.service import Repository

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NO_STORE = {"Cache-Control": "no-store"}
_MAX_JSON = 64 * 1024


def add_routes(app: web.Application, repositories: Repositories, fallback: Handler) -> None:
    """Register the direct-upload API (before the catch-all image route, ``fallback``)."""
    for path, handler, name in (
        ("/uploads", _uploads(repositories), "uploads"),
        ("/images", _images(repositories), "images"),
        ("/images/{id}", _image(repositories), "images_item"),
    ):
        app.router.add_route("*", path, where_enabled(repositories, handler, fallback), name=name)


def _site(repositories: Repositories, request: web.Request) -> tuple[Repository, DirectUploads]:
    repository = repositories.for_host(request.host)
    if repository is None:
        raise SourceNotFoundError("this host has no image repository")
    return repository, repositories.direct_for(repository)


async def _json(request: web.Request) -> Mapping[str, Any]:
    if (request.content_length or 0) > _MAX_JSON:
        raise PreconditionFailedError("the JSON body is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):  # read() may stop short
        size += len(chunk)
        if size > _MAX_JSON:
            raise PreconditionFailedError("the JSON body is too large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def _answer(record: ImageRecord, repository: Repository, status: int = 200) -> web.Response:
    body = {**record.public(), "urls": urls(record, repository)}
    return web.json_response(body, status=status, headers=_NO_STORE)


def _uploads(repositories: Repositories) -> Handler:
    async def uploads(request: web.Request) -> web.StreamResponse:
        repository, direct = _site(repositories, request)
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        repository.keys.require(request.headers, "upload")
        body = await _json(request)
        answer = await direct.presign(body.get("content_type"))
        return web.json_response(answer, headers=_NO_STORE)

    return uploads


def _images(repositories: Repositories) -> Handler:
    async def images(request: web.Request) -> web.StreamResponse:
        repository, direct = _site(repositories, request)
        if request.method == "POST":
            repository.keys.require(request.headers, "register")
            body = await _json(request)
            upload_id = body.get("upload_id")
            if not isinstance(upload_id, str):
                raise BadRequestError("upload_id: required")
            record, created = await direct.register(upload_id, Metadata.parse(body))
            return _answer(record, repository, 201 if created else 200)
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "POST"])
        repository.keys.require(request.headers, "read")
        query = request.query
        try:
            limit = int(query.get("limit", "50"))
        except ValueError as exc:
            raise BadRequestError("limit: expected an integer") from exc
        records, cursor = await direct.records().page(
            repository.settings.name,
            owner=query.get("owner"),
            tag=query.get("tag"),
            after=query.get("cursor"),
            limit=limit,
        )
        items = [{**r.public(), "urls": urls(r, repository)} for r in records]
        return web.json_response({"items": items, "next_cursor": cursor}, headers=_NO_STORE)

    return images


def _image(repositories: Repositories) -> Handler:
    async def image(request: web.Request) -> web.StreamResponse:
        repository, direct = _site(repositories, request)
        image_id = request.match_info["id"]
        if request.method == "DELETE" and repository.settings.allow_delete:
            repository.keys.require(request.headers, "delete")
            await direct.delete(image_id)
            return web.Response(status=204, headers=_NO_STORE)
        if request.method not in ("GET", "HEAD"):
            allowed = ["GET", "HEAD"] + (["DELETE"] if repository.settings.allow_delete else [])
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        repository.keys.require(request.headers, "read")
        record = await direct.records().get(repository.settings.name, image_id)
        if record is None:
            raise SourceNotFoundError("no such image")
        return _answer(record, repository)

    return image
